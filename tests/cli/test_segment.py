"""`medlearn segment` CLI: bad input gives one line naming the file and exit code 2; train/predict/evaluate."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from PIL import Image

from medlearn.tasks.segment.synthetic import make_synthetic_dataset
from tests.conftest import cli_exit_code


def run_cli(args, capsys):
    code = cli_exit_code(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err
    return lines[0]


def test_missing_dataset_json_key_exits_2_naming_the_file(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds")
    meta = json.loads((data / "dataset.json").read_text())
    del meta["file_ending"]
    (data / "dataset.json").write_text(json.dumps(meta))
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run")], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(data / "dataset.json") in line and "file_ending" in line
    assert not (tmp_path / "run").exists()  # nothing written for bad input


def test_label_without_image_exits_2(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds")
    (data / "imagesTr" / "case_002_0000.png").unlink()
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run")], capsys)
    line = _one_error_line(err)
    assert code == 2 and "labelsTr/case_002.png" in line and "no matching image" in line


def test_corrupt_nifti_and_bad_label_value_exit_2(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds", ndim=3, size=8, n_cases=2)
    bad = data / "imagesTr" / "case_001_0000.nii.gz"
    bad.write_bytes(b"not a nifti")
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run")], capsys)
    assert code == 2 and str(bad) in _one_error_line(err)
    data2 = make_synthetic_dataset(tmp_path / "ds2", n_cases=2)
    label = data2 / "labelsTr" / "case_000.png"
    Image.fromarray(np.array(Image.open(label)) * 255).save(label)
    code, _, err = run_cli(["segment", "train", str(data2), "-o", str(tmp_path / "run2")], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(label) in line and "0/255" in line


def test_unknown_plan_field_exits_2(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2)
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run"), "--set", "train.nope=1"],
                           capsys)
    assert code == 2 and "train.nope" in _one_error_line(err)


def test_train_predict_evaluate(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=3, roi=True, n_test=1)
    plan = tmp_path / "plan.yaml"
    plan.write_text("network:\n  channels: [4, 8, 16]\n  strides: [2, 2]\ntrain:\n  patch_size: [32, 32]\n"
                    "  batch_size: 2\n  steps_per_epoch: 3\n  max_epochs: 1\n")
    run = tmp_path / "run"
    code, out, err = run_cli(["segment", "train", str(data), "-o", str(run), "--plan-file", str(plan), "--quiet"],
                             capsys)
    assert code in (0, None), err
    assert json.loads((run / "plan.json").read_text())["train"]["steps_per_epoch"] == 3
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--quiet"], capsys)
    assert code == 2 and "--force" in _one_error_line(err)

    code, out, err = run_cli(["segment", "predict", str(run), str(data), "-o", str(tmp_path / "pred"),
                              "--probabilities"], capsys)
    assert code in (0, None), err
    mask = np.array(Image.open(tmp_path / "pred" / "test_000.png"))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1}
    assert np.load(tmp_path / "pred" / "test_000_probabilities.npy").shape == (2, 32, 32)

    code, out, err = run_cli(["segment", "evaluate", str(run), str(data)], capsys)
    assert code in (0, None), err
    result = json.loads((run / "evaluation" / "ds" / "metrics.json").read_text())
    assert set(result["per_case"]) == {"case_000", "case_001", "case_002"}
    assert {"auc", "f1", "sensitivity", "specificity", "accuracy"} <= set(result["pooled"])
    assert (run / "evaluation" / "ds" / "report.html").exists()


def test_predict_missing_run_exits_2(tmp_path, capsys):
    code, _, err = run_cli(["segment", "predict", str(tmp_path / "norun"), str(tmp_path), "-o", str(tmp_path / "o")],
                           capsys)
    assert code == 2 and "norun" in _one_error_line(err)


def test_predict_nifti_file_keeps_affine(tmp_path, capsys):
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    affine[:3, 3] = [10, -5, 3]
    data = make_synthetic_dataset(tmp_path / "ds", ndim=3, size=16, n_cases=2, affine=affine)
    plan = tmp_path / "plan.yaml"
    plan.write_text("network: {channels: [4, 8], strides: [2]}\n"
                    "train: {patch_size: [16, 16, 16], batch_size: 2, steps_per_epoch: 2, max_epochs: 1}\n")
    run = tmp_path / "run"
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--plan-file", str(plan), "--quiet"],
                           capsys)
    assert code in (0, None), err
    image = data / "imagesTr" / "case_000_0000.nii.gz"
    code, _, err = run_cli(["segment", "predict", str(run), str(image), "-o", str(tmp_path / "pred")], capsys)
    assert code in (0, None), err
    out = nib.load(tmp_path / "pred" / "case_000.nii.gz")
    assert np.allclose(out.affine, nib.load(image).affine) and out.shape == (16, 16, 16)


def test_interrupted_run_resumes(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2)
    plan = tmp_path / "plan.yaml"
    plan.write_text("network: {channels: [4, 8], strides: [2]}\n"
                    "train: {patch_size: [32, 32], batch_size: 2, steps_per_epoch: 2, max_epochs: 2, ensemble: 2}\n")
    run = tmp_path / "run"
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--plan-file", str(plan), "--quiet"],
                           capsys)
    assert code == 0, err
    # as if the process had died while the second member trained: the first one is not trained again
    (run / "metrics.json").unlink()
    (run / "checkpoints" / "member1" / "member.pt").unlink()
    finished = run / "checkpoints" / "member0" / "member.pt"
    stamp = finished.stat().st_mtime_ns
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--quiet"], capsys)
    assert code == 2 and "--resume" in _one_error_line(err)
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--resume", "--quiet"], capsys)
    assert code == 0, err
    assert (run / "metrics.json").exists() and (run / "checkpoints" / "member1" / "member.pt").exists()
    assert finished.stat().st_mtime_ns == stamp
