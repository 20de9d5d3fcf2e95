"""Registry of public datasets: where the official copy lives and how to verify it.

Users elsewhere can fetch a dataset by name (``medlearn data download NAME -o DIR``); tests and
benchmarks here never download (they use the local copies under ``MEDLEARN_DATA``), so the
download path is exercised only through checksum verification of local files.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from medlearn.errors import InputError
from medlearn.io import atomic_path


@dataclass(frozen=True)
class DatasetSource:
    name: str
    url: str
    filename: str
    md5: str | None
    license: str
    citation: str
    local: str | None = None  # path under MEDLEARN_DATA of the copy kept on this project's machines


MEDMNIST = "Yang et al., MedMNIST v2, Scientific Data 10, 41 (2023)"

REGISTRY: dict[str, DatasetSource] = {
    s.name: s
    for s in (
        DatasetSource("breastmnist", "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
                      "breastmnist.npz", "750601b1f35ba3300ea97c75c52ff8f6", "CC BY 4.0", MEDMNIST,
                      "medmnist_breast/breastmnist.npz"),
        DatasetSource("pneumoniamnist", "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
                      "pneumoniamnist.npz", "28209eda62fecd6e6a2d98b1501bb15f", "CC BY 4.0", MEDMNIST, None),
        DatasetSource("esol", "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/delaney-processed.csv",
                      "delaney-processed.csv", None, "see MoleculeNet", "Wu et al., MoleculeNet (2018)",
                      "esol/delaney-processed.csv"),
    )
}


def data_root() -> Path:
    """``MEDLEARN_DATA``, or ``../shared/data`` next to the working directory when it exists."""
    env = os.environ.get("MEDLEARN_DATA")
    if env:
        return Path(env)
    return Path.cwd().parent / "shared" / "data"


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, source: DatasetSource) -> bool:
    """True when ``path`` matches the registered checksum (or none is registered)."""
    return source.md5 is None or file_md5(path) == source.md5


def download(name: str, out_dir: str | Path, timeout: float = 60.0) -> Path:
    """Download a registered dataset to ``out_dir`` (atomic) and verify its checksum."""
    if name not in REGISTRY:
        raise InputError(name, "unknown dataset", f"known: {', '.join(sorted(REGISTRY))}")
    source = REGISTRY[name]
    target = Path(out_dir) / source.filename
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(source.url, timeout=timeout) as response, open(tmp, "wb") as fh:
                while chunk := response.read(1 << 20):
                    fh.write(chunk)
        except OSError as exc:
            raise InputError(source.url, f"download failed ({exc})",
                             "check the network or fetch the file by hand") from exc
        if not verify(tmp, source):
            raise InputError(source.url, "checksum mismatch", "the download is corrupt or the file changed upstream")
    return target
