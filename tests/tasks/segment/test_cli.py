"""`medlearn segment` CLI: bad input gives one line naming the file and exit code 2; train/predict/evaluate;
DICOM as scanners write it; masks written lossless."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
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


def test_all_empty_masks_exit_2_before_anything_is_written(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16)
    for i in range(2):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "labelsTr" / f"case_{i:03d}.png")
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run")], capsys)
    line = _one_error_line(err)
    assert code == 2 and "every label mask is empty" in line and "labelsTr" in line
    assert not (tmp_path / "run").exists()


def test_unknown_plan_field_exits_2(tmp_path, capsys):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2)
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run"), "--set", "train.nope=1"],
                           capsys)
    assert code == 2 and "train.nope" in _one_error_line(err)


@pytest.mark.parametrize("item, field, allowed", [("train.max_epochs=-1", "train.max_epochs", ">= 1"),
                                                  ("train.ensemble=0", "train.ensemble", ">= 1"),
                                                  ("train.lr=-1", "train.lr", "> 0"),
                                                  ("train.batch_size=0", "train.batch_size", ">= 1")])
def test_plan_values_out_of_range_stop_at_planning_naming_the_field_and_range(tmp_path, capsys, item, field, allowed):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16)
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(tmp_path / "run"), "--set", item], capsys)
    line = _one_error_line(err)
    assert code == 2 and f"'{field}'" in line and f"allowed: {allowed}" in line
    assert not (tmp_path / "run").exists()


def test_force_with_a_typo_in_set_keeps_the_finished_run(run2d, tmp_path, capsys):
    data, run = run2d
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.iterdir() if p.is_file()}
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(copy), "--quiet"], capsys)
    assert code == 2 and "--force" in _one_error_line(err)
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(copy), "--force", "--set", "train.max_minuts=1"],
                           capsys)
    assert code == 2 and "train.max_minuts" in _one_error_line(err)
    assert {p.relative_to(copy): p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_plan_fields_lists_the_renamed_fields_with_ranges(capsys):
    code, out, _ = run_cli(["segment", "plan-fields"], capsys)
    assert code == 0 and "train.max_minutes: float or null = 30.0 (> 0)" in out and "network.name" in out
    assert "train.ensemble: int = 1 (>= 1, <= 64)" in out and "max_time_minutes" not in out


def test_train_predict_evaluate(run2d, tmp_path, capsys):
    data, run = run2d
    assert json.loads((run / "plan.json").read_text())["train"]["steps_per_epoch"] == 25  # from the --plan file
    code, out, err = run_cli(["segment", "predict", str(run), str(data), "-o", str(tmp_path / "pred"),
                              "--probabilities"], capsys)
    assert code == 0, err
    mask = np.array(Image.open(tmp_path / "pred" / "test_000.png"))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1}
    assert np.load(tmp_path / "pred" / "test_000_probabilities.npy").shape == (2, 32, 32)

    code, out, err = run_cli(["segment", "evaluate", str(run), str(data), "--bootstrap", "20"], capsys)
    assert code == 0, err
    result = json.loads((run / "evaluations" / "ds" / "metrics.json").read_text())
    assert set(result["all"]["per_case"]) == {"case_000", "case_001", "case_002"}
    assert {"auc", "f1", "sensitivity", "specificity", "accuracy"} <= set(result["all"]["pooled"])
    assert (run / "evaluations" / "ds" / "report.html").exists() and "dice square" in out


def test_a_jpeg_input_gives_a_lossless_png_mask(run2d, tmp_path, capsys):
    data, run = run2d
    pixels = np.array(Image.open(data / "imagesTs" / "test_000_0000.png"))
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", quality=60)
    shutil.copy(tmp_path / "photo.jpg", tmp_path / "noext")  # a JPEG without its extension
    code, out, err = run_cli(["segment", "predict", str(run), str(tmp_path / "photo.jpg"), str(tmp_path / "noext"),
                              "-o", str(tmp_path / "pred")], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["noext.png", "photo.png"]
    with Image.open(tmp_path / "pred" / "photo.png") as mask:
        assert mask.format == "PNG" and set(np.unique(np.array(mask))) <= {0, 1}
        assert np.array(mask).any()


def test_predict_missing_run_exits_2(tmp_path, capsys):
    code, _, err = run_cli(["segment", "predict", str(tmp_path / "norun"), str(tmp_path), "-o", str(tmp_path / "o")],
                           capsys)
    assert code == 2 and "norun" in _one_error_line(err)


def test_predict_nifti_file_keeps_affine(run3d, tmp_path, capsys):
    data, run, _ = run3d
    image = data / "imagesTr" / "case_000_0000.nii.gz"
    code, _, err = run_cli(["segment", "predict", str(run), str(image), "-o", str(tmp_path / "pred")], capsys)
    assert code == 0, err
    out = nib.load(tmp_path / "pred" / "case_000.nii.gz")
    assert np.allclose(out.affine, nib.load(image).affine) and out.shape == (16, 16, 16)


def test_interrupted_run_resumes(run2d, tmp_path, capsys):
    data, finished = run2d
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    # as if the process had died while the second member trained: the first one is not trained again
    (run / "metrics.json").unlink()
    (run / "checkpoints" / "member1" / "member.pt").unlink()
    done = run / "checkpoints" / "member0" / "member.pt"
    stamp = done.stat().st_mtime_ns
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--quiet"], capsys)
    assert code == 2 and "--resume" in _one_error_line(err)
    code, _, err = run_cli(["segment", "train", str(data), "-o", str(run), "--resume", "--quiet"], capsys)
    assert code == 0, err
    assert (run / "metrics.json").exists() and (run / "checkpoints" / "member1" / "member.pt").exists()
    assert done.stat().st_mtime_ns == stamp


# -- DICOM ------------------------------------------------------------------------------------------------

def _ct_copy(folder, name="slice0.dcm", series_uid=None, z=None, instance=1):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    if series_uid is not None:
        ds.SeriesInstanceUID = series_uid
    if z is not None:
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z]
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = instance
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name)
    return ds


def test_dicom_input_gives_dicom_seg(run2d, tmp_path):
    import highdicom as hd

    from medlearn.data.dicom import read_dicom
    from medlearn.imaging.dicom_seg import write_dicom_seg
    from medlearn.tasks.segment.model import Segmenter

    _, run = run2d
    model = Segmenter.load(run)
    series = tmp_path / "ct_series"
    source = _ct_copy(series)
    written = model.predict_files(series, tmp_path / "out")
    assert [p.name for p in written] == ["ct_series.seg.dcm"]
    seg = hd.seg.segread(written[0])
    assert seg.Rows == source.Rows and seg.Columns == source.Columns
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.SegmentSequence[0].SegmentLabel == "square"  # the dataset's label name
    labels = model.predict(series)
    mask = seg.get_volume(combine_segments=True).array  # (frames, rows, cols)
    assert np.array_equal(np.squeeze(mask), labels.T)
    # orientation: an asymmetric mask must come back frame = mask.T (rows = Y, columns = X)
    asym = np.zeros((source.Columns, source.Rows), np.uint8)
    asym[10:20, 40:90] = 1
    meta = read_dicom(series)[1]
    back = hd.seg.segread(write_dicom_seg(tmp_path / "asym.seg.dcm", asym, meta, ["background", "x"]))
    assert np.array_equal(np.squeeze(back.get_volume(combine_segments=True).array), asym.T)
    nifti = model.predict_files(series, tmp_path / "out2", dicom_output="nifti")
    assert nib.load(nifti[0]).shape[:2] == (source.Columns, source.Rows)


def test_a_folder_of_several_series_asks_which_one(run2d, tmp_path, capsys):
    from pydicom.uid import generate_uid

    _, run = run2d
    folder = tmp_path / "export"
    _ct_copy(folder, "a")  # PACS exports: no file extension
    _ct_copy(folder, "b", series_uid=generate_uid())
    code, _, err = run_cli(["segment", "predict", str(run), str(folder), "-o", str(tmp_path / "o")], capsys)
    line = _one_error_line(err)
    assert code == 2 and "2 DICOM series" in line and "--series" in line and "--each-series" in line
    code, out, err = run_cli(["segment", "predict", str(run), str(folder), "-o", str(tmp_path / "each"),
                              "--each-series"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["export_series0.seg.dcm", "export_series1.seg.dcm"]
    code, out, err = run_cli(["segment", "predict", str(run), str(folder), "-o", str(tmp_path / "one"),
                              "--series", "1"], capsys)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["export.seg.dcm"]


def test_an_irregular_series_is_one_line(run2d, tmp_path, capsys):
    _, run = run2d
    folder = tmp_path / "irregular"
    for i, z in enumerate((0.0, 5.0, 17.0)):
        _ct_copy(folder, f"s{i}.dcm", z=z, instance=i + 1)
    code, _, err = run_cli(["segment", "predict", str(run), str(folder), "-o", str(tmp_path / "o")], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(folder) in line and "spacing" in line


def test_a_highdicom_failure_is_one_line_naming_the_file(run2d, tmp_path, capsys, monkeypatch):
    import highdicom

    _, run = run2d
    series = tmp_path / "ct"
    _ct_copy(series)

    def broken(*_a, **_k):
        raise ValueError("Source image has an unsupported transfer syntax")

    monkeypatch.setattr(highdicom.seg, "Segmentation", broken)
    code, _, err = run_cli(["segment", "predict", str(run), str(series), "-o", str(tmp_path / "o")], capsys)
    line = _one_error_line(err)
    assert code == 2 and str(series / "slice0.dcm") in line and "unsupported transfer syntax" in line
    assert "--dicom-output nifti" in line and not list((tmp_path / "o").glob("*.dcm"))


def test_an_image_unlike_the_training_images_is_flagged(run2d, tmp_path: Path, capsys) -> None:
    _, run = run2d
    ct_like = np.full((32, 32), -1000.0, np.float32)
    ct_like[8:20, 8:20] = 1500.0  # Hounsfield units into a model trained on 8-bit images
    nib.save(nib.Nifti1Image(ct_like, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    assert cli_exit_code(["segment", "predict", run, tmp_path / "ct.nii.gz", "-o", tmp_path / "out"]) == 0
    out = capsys.readouterr().out
    assert "ct" in out and "far from the training images" in out and "unreliable" in out
