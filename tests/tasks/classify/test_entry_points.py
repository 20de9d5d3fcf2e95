"""One axis convention and one input collector for every classify entry point (API, CLI, files, npz)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlearn.tasks.classify.model import Classifier, from_raster
from tests.conftest import FAST, cli_exit_code, make_images


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    root = tmp_path_factory.mktemp("entry")
    arrays = {}
    for k, (split, n) in enumerate((("train", 48), ("val", 16), ("test", 16))):
        # non-square images: a transposed array cannot pass for the right one
        x, y = make_images(n, size=16, seed=k)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x[:, :, :12], y
    np.savez(root / "tiny.npz", **arrays)
    assert cli_exit_code(["classify", "train", root / "tiny.npz", "-o", root / "run", *FAST]) == 0
    return root / "run", root / "tiny.npz", arrays["test_images"]


def test_api_cli_npz_and_png_give_identical_probabilities(run_and_data: tuple[Path, Path, np.ndarray],
                                                           tmp_path: Path) -> None:
    run, npz, raster = run_and_data
    model = Classifier.load(run)
    assert model.plan_.input_size == [12, 16]  # X = columns (12), Y = rows (16)
    api = model.predict_proba(from_raster(raster))  # (N, H, W) raster -> (N, C, X, Y)
    for i in range(3):
        Image.fromarray(raster[i]).save(tmp_path / f"img{i}.png")
    assert cli_exit_code(["classify", "predict", run, *[tmp_path / f"img{i}.png" for i in range(3)],
                          "-o", tmp_path / "png.csv"]) == 0
    assert cli_exit_code(["classify", "predict", run, npz, "-o", tmp_path / "npz.csv"]) == 0
    png = pd.read_csv(tmp_path / "png.csv")[["p_0", "p_1"]].to_numpy()
    table = pd.read_csv(tmp_path / "npz.csv")
    from_npz = table[table["id"].str.contains("test")][["p_0", "p_1"]].to_numpy()
    np.testing.assert_allclose(api[:3], png, atol=1e-5)
    np.testing.assert_allclose(api, from_npz, atol=1e-5)
    paths = model.predict_proba([tmp_path / "img0.png"])  # paths through the API: the same collector
    np.testing.assert_allclose(paths, png[:1], atol=1e-5)
    with pytest.raises(Exception, match="size"):  # the raster itself, untransposed, is refused: 16 x 12
        model.predict_proba(raster[:, None].astype(np.float32))


def test_dicom_without_an_extension_is_predicted(run_and_data: tuple[Path, Path, np.ndarray],
                                                  tmp_path: Path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    run, _, raster = run_and_data
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = np.ascontiguousarray(raster[0].astype(np.uint16)).tobytes()
    ds.Rows, ds.Columns = raster[0].shape
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.save_as(tmp_path / "IM0001", enforce_file_format=True)  # a PACS export: no suffix
    assert cli_exit_code(["classify", "predict", run, tmp_path / "IM0001", "-o", tmp_path / "p.csv"]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1


def test_an_image_unlike_the_training_images_is_flagged(run_and_data: tuple[Path, Path, np.ndarray],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import nibabel as nib

    run, _, raster = run_and_data
    ct_like = np.full((12, 16), -1000.0, np.float32)
    ct_like[3:9, 4:12] = 1500.0  # Hounsfield units, far from 8-bit ultrasound-like values
    nib.save(nib.Nifti1Image(ct_like, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    Image.fromarray(raster[0]).save(tmp_path / "ok.png")
    assert cli_exit_code(["classify", "predict", run, tmp_path / "ct.nii.gz", tmp_path / "ok.png",
                          "-o", tmp_path / "p.csv"]) == 0
    out = capsys.readouterr().out
    assert "ct" in out and "far from the training images" in out and "ok: " not in out


def test_patient_mean_is_the_mean_of_the_image_probabilities(run_and_data: tuple[Path, Path, np.ndarray],
                                                             tmp_path: Path) -> None:
    run, _, raster = run_and_data
    for i in range(4):
        Image.fromarray(raster[i]).save(tmp_path / f"i{i}.png")
    (tmp_path / "t.csv").write_text("image,patient_id\ni0.png,A\ni1.png,A\ni2.png,B\ni3.png,A\n")
    model = Classifier.load(run)
    model.plan_.patient.aggregation = "mean"
    images, patient_table, _ = model.predict_table([tmp_path / "t.csv"])
    p = images[["p_0", "p_1"]].to_numpy()
    expected_a = p[[0, 1, 3]].mean(0)  # by hand
    row_a = patient_table[patient_table["patient_id"] == "A"][["p_0", "p_1"]].to_numpy()[0]
    np.testing.assert_allclose(row_a, expected_a, atol=1e-6)
    np.testing.assert_allclose(patient_table[patient_table["patient_id"] == "B"][["p_0", "p_1"]].to_numpy()[0], p[2],
                               atol=1e-6)
    assert patient_table.iloc[0]["predicted"] == model.classes_[int(expected_a.argmax())]


def test_a_table_may_not_point_outside_its_folder_unless_allowed(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    x, y = make_images(12, seed=1)
    (tmp_path / "inner").mkdir()
    rows = ["image,label"]
    for i in range(12):
        Image.fromarray(x[i]).save(tmp_path / f"o{i}.png")
        rows.append(f"../o{i}.png,{y[i]}")
    (tmp_path / "inner" / "t.csv").write_text("\n".join(rows) + "\n")
    assert cli_exit_code(["classify", "train", tmp_path / "inner" / "t.csv", "-o", tmp_path / "r", *FAST]) == 2
    assert "outside the table's folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert cli_exit_code(["classify", "train", tmp_path / "inner" / "t.csv", "-o", tmp_path / "r", *FAST,
                          "--allow-outside-paths", "--set", "train.max_epochs=1"]) == 0


def test_mixed_sizes_train_with_the_resize_the_error_suggests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, y = make_images(24, seed=2)
    rows = ["image,label"]
    for i in range(24):
        im = Image.fromarray(x[i])
        (im.resize((20, 20)) if i % 3 == 0 else im).save(tmp_path / f"m{i}.png")
        rows.append(f"m{i}.png,{y[i]}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert cli_exit_code(["classify", "train", tmp_path / "t.csv", "-o", tmp_path / "r", *FAST]) == 2
    assert "data.resize" in capsys.readouterr().err
    assert cli_exit_code(["classify", "train", tmp_path / "t.csv", "-o", tmp_path / "r", *FAST,
                          "--set", "data.resize=[16,16]", "--set", "train.max_epochs=1"]) == 0
    assert json.loads((tmp_path / "r" / "plan.json").read_text())["input_size"] == [16, 16]
