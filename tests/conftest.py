"""Shared fixtures: the real-data root and tiny synthetic datasets with a learnable signal."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]


def cli_exit_code(args: list[str]) -> int:
    """Run ``medlearn ARGS`` in this process (through ``medlearn.cli.main.main``, whose ``app`` a test
    may have replaced) and return its exit code: 0, 2 for bad input, ..."""
    from medlearn.cli import main as cli_main

    try:
        cli_main.main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``MEDLEARN_DATA`` (default ``../shared/data``): the real public datasets. Missing = test failure."""
    root = Path(os.environ.get("MEDLEARN_DATA", REPO.parent / "shared" / "data"))
    assert root.is_dir(), f"real data not found at {root}: set MEDLEARN_DATA"
    return root


def make_images(n: int, size: int = 16, seed: int = 0, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 has a bright square in the top-left corner, class 0 none; uint8.

    The class must survive the flips and affine moves training augments with: a square in one corner
    per class would not (flipped, each class looks like the other), and a test would then pass only
    when an untrained network happened to rank the two corners the right way round.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, size=(n, size, size, channels) if channels > 1 else (n, size, size)).astype(np.uint8)
    q = size // 3
    for i, y in enumerate(labels):
        if y == 1:
            images[i, :q, :q] = 220
    return images, labels.astype(np.uint8)


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """A MedMNIST-layout ``.npz`` (train 48 / val 16 / test 16) of 16x16 images."""
    arrays = {}
    for k, (split, n) in enumerate((("train", 48), ("val", 16), ("test", 16))):
        x, y = make_images(n, seed=k)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y
    path = tmp_path / "tiny.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """A CSV table of PNG images with patient ids (2 images per patient) and no split column."""
    from PIL import Image

    x, y = make_images(40, seed=3)
    folder = tmp_path / "png"
    folder.mkdir()
    rows = ["image,label,patient_id"]
    for i in range(len(x)):
        name = f"img{i:03d}.png"
        Image.fromarray(x[i]).save(folder / name)
        rows.append(f"png/{name},{'tumour' if y[i] else 'normal'},p{i // 2 if y[i] == y[i - 1 if i % 2 else i] else i}")
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


# a single model, as the plan makes for large sets (best-validation checkpoint, early stopping)
FAST = ["--set", "network.name=smallcnn", "--set", "network.widths=[8,16]", "--set", "train.max_epochs=4",
        "--set", "train.batch_size=16", "--set", "train.lr=0.01", "--set", "train.ensemble=1",
        "--set", "train.checkpoint=best_val", "--quiet", "--bootstrap", "50"]
