"""Bad input through the CLI: one line naming the file, exit code 2, no run that looks finished."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medlearn.cli.main import main


def _png(path: Path, shape: tuple[int, ...] = (8, 8)) -> None:
    Image.fromarray(np.zeros(shape, np.uint8)).save(path)


def _case_missing_image(d: Path) -> tuple[Path, str]:
    _png(d / "a.png")
    (d / "t.csv").write_text("image,label\na.png,0\nghost.png,1\n")
    return d / "t.csv", "ghost.png"


def _case_truncated_image(d: Path) -> tuple[Path, str]:
    _png(d / "a.png")
    raw = (d / "a.png").read_bytes()
    (d / "cut.png").write_bytes(raw[: len(raw) // 2])
    (d / "t.csv").write_text("image,label\na.png,0\ncut.png,1\n")
    return d / "t.csv", "cut.png"


def _case_missing_columns(d: Path) -> tuple[Path, str]:
    (d / "t.csv").write_text("path,diagnosis\na.png,0\n")
    return d / "t.csv", "t.csv"


def _case_npz_keys(d: Path) -> tuple[Path, str]:
    np.savez(d / "x.npz", x=np.zeros((4, 8, 8)), y=np.zeros(4))
    return d / "x.npz", "x.npz"


def _case_mixed_sizes(d: Path) -> tuple[Path, str]:
    _png(d / "a.png")
    _png(d / "big.png", (9, 9))
    (d / "t.csv").write_text("image,label\na.png,0\nbig.png,1\n")
    return d / "t.csv", "big.png"


def _case_mixed_channels(d: Path) -> tuple[Path, str]:
    _png(d / "a.png")
    _png(d / "rgb.png", (8, 8, 3))
    (d / "t.csv").write_text("image,label\na.png,0\nrgb.png,1\n")
    return d / "t.csv", "rgb.png"


def _case_nan(d: Path) -> tuple[Path, str]:
    good = np.ones((4, 4, 4), np.float32)
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(good, np.eye(4)), str(d / "good.nii.gz"))
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(d / "nan.nii.gz"))
    (d / "t.csv").write_text("image,label\ngood.nii.gz,0\nnan.nii.gz,1\n")
    return d / "t.csv", "nan.nii.gz"


def _case_unknown_label(d: Path) -> tuple[Path, str]:
    _png(d / "a.png")
    (d / "t.csv").write_text("image,label\na.png,benign\na.png,malignant\na.png,unsure\n")
    return d / "t.csv", "t.csv"


def _case_patient_leak(d: Path) -> tuple[Path, str]:
    _png(d / "a.png")
    (d / "t.csv").write_text("image,label,patient_id,split\na.png,0,p1,train\na.png,1,p1,test\na.png,1,p2,val\n")
    return d / "t.csv", "t.csv: patient 'p1'"


CASES = {
    "patient in two splits": _case_patient_leak,
    "missing image": _case_missing_image,
    "truncated image": _case_truncated_image,
    "csv without needed columns": _case_missing_columns,
    "npz without expected keys": _case_npz_keys,
    "mixed sizes": _case_mixed_sizes,
    "mixed channels": _case_mixed_channels,
    "nan values": _case_nan,
    "label not in the label set": _case_unknown_label,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, name = CASES[case](tmp_path)
    extra = ["--classes", "benign,malignant"] if case == "label not in the label set" else []
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["classify", "train", str(data), "-o", str(run), "--quiet", *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and name in err[0] and "Traceback" not in err[0]
    assert not (run / "metrics.json").exists() and not (run / "model.pt").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    data, _ = _case_missing_image(tmp_path)
    from medlearn.errors import InputError

    with pytest.raises(InputError):
        main(["classify", "train", str(data), "-o", str(tmp_path / "run"), "--debug"])


def test_data_check_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "t.csv").write_text("image,label\na.png,0\nghost.png,1\ncut.png,1\n")
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", str(tmp_path / "t.csv")])
    assert exc.value.code == 2
    out = capsys.readouterr().out
    assert "ghost.png" in out and "cut.png" in out and "2 error(s)" in out


def test_data_inspect_prints_the_fingerprint(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    main(["data", "inspect", str(shared_data / "medmnist_pneumonia" / "pneumoniamnist_reduced_train.npz")])
    out = capsys.readouterr().out
    assert '"imbalance_ratio"' in out and '"n_images": 5030' in out.replace("\n", "").replace("  ", "") or "5030" in out
