"""``medlearn register`` end to end on tiny pairs: train, predict (files, CSV, --refine, --method), evaluate,
the Python API, ONNX export, the service hook, atlas mode, a classical run and a 3D Learn2Reg run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import medlearn
from medlearn.data.images import read_image
from medlearn.evaluation.registration import tre_known_field
from medlearn.tasks.register.data import load_pair, read_pairs_csv
from medlearn.tasks.register.io import read_displacement_field
from tests.conftest import cli_exit_code
from tests.tasks.register.conftest import smooth_image, write_pairs

TINY = ["--set", "network.channels=[8,16,16,16]", "--set", "train.max_epochs=2", "--set", "train.steps_per_epoch=4",
        "--set", "inference.refine_steps=20", "--bootstrap", "20", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("register")
    csv = write_pairs(folder / "ds", n=6, shape=(32, 32))
    run = folder / "run"
    assert cli_exit_code(["register", "train", csv, "-o", run, *TINY]) == 0
    return csv, run


def test_train_plans_and_scores_the_validation_pairs(trained, capsys):
    csv, run = trained
    plan = json.loads((run / "plan.json").read_text())
    assert plan["data"]["ndim"] == 2 and plan["data"]["working_shape"] == [32, 32]
    assert plan["loss"]["similarity"] == "ncc" and plan["data"]["labels"] and plan["loss"]["dice_weight"] == 1.0
    assert plan["data"]["label_ids"] == [1, 2] and plan["network"]["name"] == "voxelmorph"
    metrics = json.loads((run / "metrics.json").read_text())
    val = metrics["val"]
    for key in ("dice", "hd95", "tre_mm", "folding_percent", "std_log_jacobian", "ncc_before", "ncc_after",
                "mi_before", "mi_after", "seconds"):
        assert {"value", "ci95"} <= set(val[key]), key
    assert val["ncc_after"]["value"] > val["ncc_before"]["value"]
    assert val["tre_mm"]["value"] < val["tre_mm_before"]["value"]
    assert set(val["per_label"]) == {"1", "2"} and val["method"] == "network" and val["refine_steps"] == 20
    splits = json.loads((run / "splits.json").read_text())
    assert splits["unit"] == "pair" and len(splits["train"]) + len(splits["val"]) == 6
    html = (run / "report.html").read_text()
    assert "checkerboard" in html.lower() and "Jacobian" in html and "Per structure" in html


def test_predict_one_pair_writes_fixed_geometry_and_the_itk_field(trained, tmp_path):
    csv, run = trained
    ds = csv.parent
    out = tmp_path / "one"
    assert cli_exit_code(["register", "predict", run, ds / "f0.nii.gz", ds / "m0.nii.gz", "--moving-label",
                          ds / "ml0.nii.gz", "-o", out]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["displacement.nii.gz", "jacobian.nii.gz", "warped.nii.gz", "warped_label.nii.gz"]
    fixed, fmeta = read_image(ds / "f0.nii.gz")
    warped, wmeta = read_image(out / "warped.nii.gz")
    label, _ = read_image(out / "warped_label.nii.gz", dtype=None)
    assert warped.shape == fixed.shape and np.allclose(wmeta.affine, fmeta.affine)
    assert set(np.unique(label).tolist()) <= {0, 1, 2}
    ddf, dmeta = read_displacement_field(out / "displacement.nii.gz")
    assert ddf.shape == (2, 32, 32) and np.allclose(dmeta.affine, fmeta.affine)
    # the API on the same pixels gives the same field as the CLI
    model = medlearn.load_run(run)
    moving = read_image(ds / "m0.nii.gz")[0]
    assert np.allclose(model.predict(fixed, moving), ddf, atol=1e-4)
    assert np.allclose(model.transform(fixed, moving), warped, atol=1e-3)


def test_predict_a_csv_refine_and_methods(trained, tmp_path):
    csv, run = trained
    assert cli_exit_code(["register", "predict", run, csv, "-o", tmp_path / "all", "--refine", "0"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [f"p{k}" for k in range(6)]
    model = medlearn.load_run(run)
    pair = load_pair(read_pairs_csv(csv).pairs[0])

    errors = {}
    for steps in (0, 60):
        result = model.register_pair(pair, refine=steps)
        errors[steps] = float(tre_known_field(result.ddf, pair.known_ddf).mean())
        assert result.refine_steps == steps
    assert errors[60] < errors[0]  # instance optimisation from the network's field helps
    classical = model.register_pair(pair, method="classical")
    assert classical.method == "bspline" and float(tre_known_field(classical.ddf, pair.known_ddf).mean()) < 1.5
    assert model.register_pair(pair, method="demons").method == "demons"


def test_evaluate_writes_an_evaluation_with_cis_and_classical_alone(trained):
    csv, run = trained
    before = (run / "metrics.json").read_bytes()
    assert cli_exit_code(["register", "evaluate", run, csv, "--name", "net", "--bootstrap", "20"]) == 0
    assert cli_exit_code(["register", "evaluate", run, csv, "--name", "sitk", "--method", "classical",
                          "--bootstrap", "20"]) == 0
    net = json.loads((run / "evaluations" / "net" / "metrics.json").read_text())
    sitk = json.loads((run / "evaluations" / "sitk" / "metrics.json").read_text())
    assert net["all"]["n"] == 6 and net["seen_in_training"]["items"] >= 1
    assert sitk["all"]["method"] == "bspline" and sitk["all"]["refine_steps"] == 0
    assert {"value", "ci95"} <= set(sitk["all"]["dice"]) and len(net["all"]["per_pair"]) == 6
    assert (run / "metrics.json").read_bytes() == before


def test_export_onnx_matches_the_network(trained, tmp_path):
    from medlearn.imaging.export import read_metadata, run_exported

    _, run = trained
    model = medlearn.load_run(run)
    meta = model.export_onnx(tmp_path / "reg.onnx")
    assert json.loads(meta["working_shape"]) == [32, 32] and "field_convention" in meta
    pair = np.stack([smooth_image((32, 32), 5), smooth_image((32, 32), 6)])[None]  # (1, 2, X, Y): moving, fixed
    (ddf,) = run_exported(tmp_path / "reg.onnx", pair)
    with torch.no_grad():
        eager = model.net_(torch.tensor(pair[:, :1]), torch.tensor(pair[:, 1:])).numpy()
    assert ddf.shape == (1, 2, 32, 32) and np.abs(ddf - eager).max() < 1e-4
    assert read_metadata(tmp_path / "reg.onnx")["task"] == "register"


def test_serve_predict_returns_the_warped_image_and_a_jacobian_heatmap(trained, tmp_path):
    from medlearn.errors import InputError
    from medlearn.tasks.base import ServiceInput

    csv, run = trained
    model = medlearn.load_run(run)
    files = [csv.parent / "f1.nii.gz", csv.parent / "m1.nii.gz"]
    out = model.serve_predict(ServiceInput(files=files, options={"refine": "5"}), tmp_path)
    assert out.results[0]["refine_steps"] == 5 and out.results[0]["ncc_after"] > out.results[0]["ncc_before"]
    assert {p.name for p in out.files} >= {"warped.nii.gz", "displacement.nii.gz"}
    view = out.viewer[0]
    assert view["overlay_kind"] == "heatmap" and view["shape"] == [32, 32, 1]
    assert model.describe()["task"] == "register"
    with pytest.raises(InputError, match="takes two"):
        model.serve_predict(ServiceInput(files=files[:1]), tmp_path)


def test_a_classical_run_and_atlas_mode(tmp_path):
    csv = write_pairs(tmp_path / "ds", n=3, shape=(24, 24), known=False, seed=2)
    run = tmp_path / "classical"
    assert cli_exit_code(["register", "train", csv, "-o", run, "--set", "network.name=classical",
                          "--set", "classical.method=affine", "--bootstrap", "0", "--quiet"]) == 0
    model = medlearn.load_run(run)
    assert model.net_ is None and model.describe()["network"] == "classical"
    assert json.loads((run / "metrics.json").read_text())["val"]["method"] == "affine"
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(3):  # atlas mode: every image of a folder to one fixed image
        (folder / f"m{k}.nii.gz").write_bytes((tmp_path / "ds" / f"m{k}.nii.gz").read_bytes())
    atlas_run = tmp_path / "atlas"
    assert cli_exit_code(["register", "train", folder, "--atlas", tmp_path / "ds" / "f0.nii.gz", "-o", atlas_run,
                          "--set", "network.channels=[8,16]", "--set", "train.max_epochs=1",
                          "--set", "train.steps_per_epoch=2", "--set", "inference.refine_steps=0",
                          "--bootstrap", "0", "--quiet"]) == 0
    assert json.loads((atlas_run / "splits.json").read_text())["val"][0].startswith("atlas<-")


def test_a_3d_learn2reg_dataset_trains_and_evaluates(tmp_path):
    from tests.tasks.register.test_data import _learn2reg

    root = _learn2reg(tmp_path / "l2r", n_cases=3)
    run = tmp_path / "run3d"
    assert cli_exit_code(["register", "train", root, "-o", run, "--set", "network.channels=[8,8]",
                          "--set", "train.max_epochs=1", "--set", "train.steps_per_epoch=2",
                          "--set", "inference.refine_steps=2", "--bootstrap", "0", "--quiet"]) == 0
    plan = json.loads((run / "plan.json").read_text())
    assert plan["data"]["ndim"] == 3 and plan["train"]["batch_size"] == 1 and plan["train"]["max_minutes"] == 30
    splits = json.loads((run / "splits.json").read_text())
    assert splits["val"] == ["TINY_0002_0000<-TINY_0002_0001"] and len(splits["train"]) == 2  # registration_val
    metrics = json.loads((run / "metrics.json").read_text())
    assert "tre_mm" in metrics["val"] and "dice" in metrics["val"]  # keypoints and labels
    assert cli_exit_code(["register", "evaluate", run, root, "--name", "v", "--bootstrap", "0"]) == 0
