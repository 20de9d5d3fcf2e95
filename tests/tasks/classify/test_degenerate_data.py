"""Labels and cohorts a classifier cannot honestly learn from or be scored on: refused, or said plainly."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import FAST, cli_exit_code, make_images


def _npz(path: Path, labels_by_split: dict[str, np.ndarray], size: int = 16) -> Path:
    arrays = {}
    for k, (split, y) in enumerate(labels_by_split.items()):
        x, _ = make_images(len(y), size=size, seed=k)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, np.asarray(y, np.uint8)
    np.savez(path, **arrays)
    return path


def test_one_class_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _npz(tmp_path / "one.npz", {"train": np.zeros(24), "val": np.zeros(8), "test": np.zeros(8)})
    assert cli_exit_code(["classify", "train", data, "-o", tmp_path / "r", *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only one class" in err[0]
    assert not (tmp_path / "r").exists()  # a refused start leaves nothing behind


def test_a_stray_mask_value_is_not_taken_for_a_256_class_task(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = np.arange(24) % 2
    labels[5] = 255
    data = _npz(tmp_path / "stray.npz", {"train": labels, "val": np.arange(8) % 2, "test": np.arange(8) % 2})
    assert cli_exit_code(["classify", "train", data, "-o", tmp_path / "r", *FAST]) == 2
    err = capsys.readouterr().err
    assert "[0, 1, 255]" in err and "2..254" in err


def test_empty_arrays_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    np.savez(tmp_path / "e.npz", train_images=np.zeros((0, 8, 8), np.uint8), train_labels=np.zeros(0))
    assert cli_exit_code(["classify", "train", tmp_path / "e.npz", "-o", tmp_path / "r", *FAST]) == 2
    assert "empty" in capsys.readouterr().err


def test_a_one_class_validation_split_selects_on_the_loss_and_tiny_tests_get_no_ci(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _npz(tmp_path / "v.npz", {"train": np.arange(32) % 2, "val": np.ones(8), "test": np.array([0, 1, 1])})
    assert cli_exit_code(["classify", "train", data, "-o", tmp_path / "r", *FAST]) == 0
    out = capsys.readouterr().out
    assert "train.monitor=val_loss" in out and "CI not estimable" in out
    plan = json.loads((tmp_path / "r" / "plan.json").read_text())
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert plan["train"]["monitor"] == "val_loss"
    assert metrics["val"]["auc"]["value"] is None and "one class" in metrics["val"]["auc"]["ci_note"]
    test_auc = metrics["test"]["auc"]
    assert test_auc["ci95"] is None and "3 unit(s)" in test_auc["ci_note"]  # 3 cases: not estimable
    assert "CI not estimable" in (tmp_path / "r" / "report.html").read_text()


def test_a_small_3d_cohort_with_patients_gets_a_split(tmp_path: Path) -> None:
    """12 cases of 6 patients: stratified group k-fold would need 8 patients per class; a split is still made."""
    x, y = make_images(12, size=8, seed=5)
    rows = ["image,label,patient_id"]
    for i in range(12):
        vol = np.repeat(x[i][:, :, None], 8, axis=2).astype(np.float32)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / f"v{i}.nii.gz"))
        rows.append(f"v{i}.nii.gz,{y[i]},p{i // 2 * 2 + y[i]}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert cli_exit_code(["classify", "train", tmp_path / "t.csv", "-o", tmp_path / "r", *FAST,
                          "--set", "train.max_epochs=1"]) == 0
    splits = json.loads((tmp_path / "r" / "splits.json").read_text())
    assert splits["val"] and splits["test"] and splits["train"]


@pytest.mark.parametrize("override,message", [
    ("train.max_epochs=-1", "'train.max_epochs' is -1; allowed: >= 1"),
    ("train.ensemble=0", "'train.ensemble' is 0; allowed: >= 1"),
    ("train.lr=-1", "'train.lr' is -1.0; allowed: > 0"),
    ("train.batch_size=0", "'train.batch_size' is 0; allowed: >= 1"),
])
def test_plan_values_out_of_range_stop_at_planning(override: str, message: str, tiny_npz: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "r", *FAST, "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "r").exists()


def test_yaml_11_numbers_are_numbers(tiny_npz: Path, tmp_path: Path) -> None:
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "r", *FAST, "--set", "train.lr=1e-3",
                          "--set", "train.max_epochs=1"]) == 0
    assert json.loads((tmp_path / "r" / "plan.json").read_text())["train"]["lr"] == 0.001


def test_a_split_file_with_an_image_in_two_splits_is_refused(tiny_npz: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"train": [0, 1, 2], "val": [2, 3]}))
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "r", *FAST, "--split-file",
                          tmp_path / "s.json"]) == 2
    assert "both 'train' and 'val'" in capsys.readouterr().err
    (tmp_path / "l.json").write_text(json.dumps([0, 1, 2]))
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "r", *FAST, "--split-file",
                          tmp_path / "l.json"]) == 2
    assert "must be a mapping" in capsys.readouterr().err
