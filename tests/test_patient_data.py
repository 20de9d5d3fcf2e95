"""No patient identifier of a DICOM input reaches what medlearn writes or prints: predictions, evaluations,
reports, the run directory, the terminal."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medlearn.data.deid import phi_strings
from tests.conftest import FAST, cli_exit_code, make_images

# identifiers shorter than this could turn up by chance inside base64 figures; the fake PHI in the sample
# files (names, IDs, dates, institutions) is longer
MIN_LENGTH = 6


@pytest.fixture()
def dicom_phi(shared_data: Path, tmp_path: Path) -> tuple[list[Path], set[str]]:
    folder = tmp_path / "dicom"
    folder.mkdir()
    sources = sorted((shared_data / "dicom_samples" / "ct_brain_series_fake_phi").glob("*.dcm"))
    files = [Path(shutil.copy(s, folder / f"case{i}.dcm")) for i, s in enumerate(sources)]
    phi = {s for f in files for s in phi_strings(pydicom.dcmread(f)) if len(s) >= MIN_LENGTH}
    assert phi, "the sample files should carry fake identifiers"
    return files, phi


def _leaks(folder: Path, phi: set[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix.lower() != ".dcm":  # inputs are the user's own files
            data = path.read_bytes()
            found += [f"{path.name}: {s}" for s in phi if s.encode() in data]
    return found


def test_classify_predict_evaluate_and_report_carry_no_identifier(dicom_phi: tuple[list[Path], set[str]],
                                                                  tmp_path: Path, capsys) -> None:
    files, phi = dicom_phi
    x, y = make_images(40, seed=3, channels=3)  # RGB, like the CT brain samples (secondary capture)
    rows = ["image,label"]
    for i in range(len(x)):
        Image.fromarray(x[i]).save(tmp_path / "dicom" / f"t{i}.png")
        rows.append(f"t{i}.png,{y[i]}")
    (tmp_path / "dicom" / "train.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    assert cli_exit_code(["classify", "train", tmp_path / "dicom" / "train.csv", "-o", run, *FAST,
                          "--set", "data.resize=[16,16]", "--set", "train.max_epochs=1"]) == 0
    (tmp_path / "dicom" / "eval.csv").write_text(f"image,label\n{files[0].name},0\n{files[1].name},1\n"
                                                 + "\n".join(rows[1:11]) + "\n")
    assert cli_exit_code(["classify", "predict", run, *files, "-o", tmp_path / "out" / "p.csv"]) == 0
    assert cli_exit_code(["classify", "evaluate", run, tmp_path / "dicom" / "eval.csv", "--name", "dicom"]) == 0
    assert cli_exit_code(["classify", "explain", run, files[0], "-o", tmp_path / "out" / "ex"]) == 0
    captured = capsys.readouterr()
    assert (run / "evaluations" / "dicom" / "report.html").exists()
    printed = [s for s in phi if s in captured.out or s in captured.err]
    assert not printed, printed
    assert not _leaks(run, phi) and not _leaks(tmp_path / "out", phi)
    assert np.isfinite(np.genfromtxt(tmp_path / "out" / "p.csv", delimiter=",", skip_header=1)[:, 1]).all()
