"""End-to-end segmentation training on tiny synthetic data (seconds on a CPU)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from medlearn.data.images import read_image
from medlearn.data.msd import MSDCase
from medlearn.engine.parallel import available_cores
from medlearn.errors import RunExistsError
from medlearn.tasks.segment import Segmenter
from medlearn.tasks.segment.inference import SegmentationModel
from medlearn.tasks.segment.synthetic import make_synthetic_dataset

TINY_2D = {"network.channels": [8, 16, 32], "network.strides": [2, 2], "train.patch_size": [32, 32],
           "train.batch_size": 4, "train.steps_per_epoch": 25, "train.max_epochs": 4, "train.lr": 0.01,
           "train.augmentation": "light", "train.max_time_minutes": 2.0}


def test_overfits_a_square_and_predicts_with_two_members_trained_side_by_side(tmp_path):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=3, size=32, roi=True)
    seg = Segmenter(overrides={**TINY_2D, "train.ensemble": 2}).fit(data, tmp_path / "run")
    assert seg.plan_.train.patch_size == [32, 32] and seg.run_dir_ == tmp_path / "run"
    for name in ("plan.json", "config.yaml", "versions.json", "splits.json", "model.pt", "model.onnx",
                 "metrics.json", "report.html"):
        assert (tmp_path / "run" / name).exists(), name
    image, _ = read_image(data / "imagesTr" / "case_000_0000.png")
    truth = read_image(data / "labelsTr" / "case_000.png", dtype=None)[0][0]
    pred = seg.predict(image)
    dice = 2 * np.sum((pred == 1) & (truth == 1)) / (np.sum(pred == 1) + np.sum(truth == 1))
    assert dice > 0.9
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["validation"]["mean"]["square"]["dice"] > 0.8
    assert "largest_component" in metrics["validation"]["postprocessing"]
    # two members with their own seeds, checkpoints and logs, both in the saved model
    training = metrics["training"]
    assert training["members"] == 2 and all(s > 0 for s in training["steps_per_member"])
    assert training["members_side_by_side"] == min(2, available_cores())
    for k in (0, 1):
        assert (tmp_path / "run" / "checkpoints" / f"member{k}" / "member.pt").exists()
        assert (tmp_path / "run" / "logs" / f"member{k}" / "metrics.csv").exists()
    members = seg.model_.net.members
    assert len(members) == 2 and not torch.equal(next(members[0].parameters()), next(members[1].parameters()))
    # three cases: the plan trains on the validation case too, and the metrics say so
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert set(splits["val"]) <= set(splits["train"]) and metrics["validation"]["seen_in_training"]
    assert "also learnt from these validation cases" in (tmp_path / "run" / "report.html").read_text()
    with pytest.raises(RunExistsError):
        Segmenter(overrides=TINY_2D).fit(data, tmp_path / "run")
    # torch and ONNX Runtime paths agree on the trained model
    torch_model = SegmentationModel.load(tmp_path / "run", engine="torch")
    assert torch_model.session is None and seg.model_.session is not None
    assert np.allclose(torch_model.predict_proba(image), seg.predict_proba(image), atol=1e-4)


def test_compiled_training_with_ema_saves_the_averaged_network(tmp_path):
    from medlearn.tasks.segment.module import build_segmentation_net

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=32)
    overrides = {**TINY_2D, "train.max_epochs": 1, "train.steps_per_epoch": 3, "train.compile": "on",
                 "train.ema_decay": 0.5, "train.ensemble": 1}
    seg = Segmenter(overrides=overrides).fit(data, tmp_path / "run")
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=False)["state_dict"]
    expected = build_segmentation_net(seg.plan_).state_dict().keys()
    assert saved.keys() == expected  # no "_orig_mod." prefixes from torch.compile
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]["steps"] == 3
    # the checkpoint holds the EMA weights as its state_dict, the raw ones apart; the model is the EMA
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=False)
    averaged = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    raw = {k.removeprefix("net."): v for k, v in ckpt["current_model_state"].items()}
    name = next(k for k in saved if k.endswith("weight") and saved[k].ndim == 4)
    assert torch.equal(saved[name], averaged[name]) and not torch.equal(saved[name], raw[name])


def test_3d_prediction_keeps_the_nifti_affine(tmp_path):
    affine = np.array([[0, 0, 1.5, -20], [-1.2, 0, 0, 30], [0, 1.0, 0, 5], [0, 0, 0, 1]])
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16, ndim=3, affine=affine, n_test=1)
    overrides = {"network.channels": [4, 8], "network.strides": [2], "train.patch_size": [16, 16, 16],
                 "train.batch_size": 2, "train.steps_per_epoch": 2, "train.max_epochs": 1,
                 "train.val_fraction": 0.5}
    Segmenter(overrides=overrides).fit(data, tmp_path / "run")
    model = SegmentationModel.load(tmp_path / "run")
    written = model.predict_files(data, tmp_path / "out", probabilities=True)
    assert [p.name for p in written] == ["test_000.nii.gz", "test_000_probabilities.nii.gz"]
    src = nib.load(data / "imagesTs" / "test_000_0000.nii.gz")
    out = nib.load(written[0])
    assert np.allclose(out.affine, src.affine) and out.shape == src.shape
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1}
    probs = nib.load(written[1])
    assert probs.shape == (*src.shape, 2) and np.allclose(probs.affine, src.affine)


def test_dicom_input_gives_dicom_seg(tmp_path):
    import shutil

    import highdicom as hd
    import pydicom
    from pydicom.data import get_testdata_file

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=32)
    overrides = {"network.channels": [4, 8], "network.strides": [2], "train.patch_size": [32, 32],
                 "train.batch_size": 2, "train.steps_per_epoch": 2, "train.max_epochs": 1}
    Segmenter(overrides=overrides).fit(data, tmp_path / "run")
    model = SegmentationModel.load(tmp_path / "run")
    series = tmp_path / "ct_series"
    series.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), series / "slice0.dcm")
    written = model.predict_files(series, tmp_path / "out")
    assert [p.name for p in written] == ["ct_series.seg.dcm"]
    seg = hd.seg.segread(written[0])
    source = pydicom.dcmread(series / "slice0.dcm")
    assert seg.Rows == source.Rows and seg.Columns == source.Columns
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    labels, _, _ = model.predict_case(MSDCase("x", [series], None, None))
    mask = seg.get_volume(combine_segments=True).array  # (frames, rows, cols)
    assert np.array_equal(np.squeeze(mask), labels.T)
    # orientation: an asymmetric mask must come back frame = mask.T (rows = Y, columns = X)
    from medlearn.tasks.segment.dicom import write_dicom_seg

    asym = np.zeros((source.Columns, source.Rows), np.uint8)
    asym[10:20, 40:90] = 1
    meta = read_image(series)[1]
    back = hd.seg.segread(write_dicom_seg(tmp_path / "asym.seg.dcm", asym, meta, ["background", "x"]))
    assert np.array_equal(np.squeeze(back.get_volume(combine_segments=True).array), asym.T)
    nifti = model.predict_files(series, tmp_path / "out2", dicom_output="nifti")
    assert nib.load(nifti[0]).shape[:2] == (source.Columns, source.Rows)


@pytest.mark.parametrize("ndim", [2, 3])
def test_channels_last_training_layout_gives_the_same_outputs_and_is_undone_after_fit(tmp_path, ndim):
    from medlearn.tasks.segment.module import SegmentationModule
    from medlearn.tasks.segment.train import build_plan

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16, ndim=ndim)
    plan = build_plan(data, {"network.channels": [4, 8], "network.strides": [2]})
    assert plan.train.memory_format == "channels_last"
    module = SegmentationModule(plan.to_dict()).eval()
    x = torch.randn(2, plan.in_channels, *[16] * ndim)
    before = module(x)
    module.setup("fit")
    layout = torch.channels_last if ndim == 2 else torch.channels_last_3d
    conv = next(p for p in module.net.parameters() if p.ndim == ndim + 2)
    assert conv.is_contiguous(memory_format=layout)
    torch.testing.assert_close(module(x.contiguous(memory_format=layout)), before, rtol=1e-4, atol=1e-5)
    module.on_fit_end()
    assert conv.is_contiguous()


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bf16_training_runs_the_network_in_bfloat16_and_keeps_float32_weights_and_loss(tmp_path, precision):
    from medlearn.tasks.segment.module import SegmentationModule
    from medlearn.tasks.segment.train import build_plan

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16)
    plan = build_plan(data, {"network.channels": [4, 8], "network.strides": [2], "train.precision": precision,
                             "train.augmentation": "none"})
    module = SegmentationModule(plan.to_dict())
    seen = []
    module.net.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    batch = (torch.randn(2, plan.in_channels, 16, 16), torch.randint(0, 2, (2, 16, 16)), torch.ones(2, 16, 16))
    module.log = lambda *a, **k: None  # no Trainer attached
    loss = module.training_step(batch, 0)
    loss.backward()
    assert seen == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in module.net.parameters()
               if p.grad is not None)


def test_a_held_out_validation_case_stays_out_of_training(tmp_path):
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=3, size=32, roi=True)
    overrides = {**TINY_2D, "train.max_epochs": 1, "train.train_on_val_cases": False}
    Segmenter(overrides=overrides).fit(data, tmp_path / "run")
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert len(splits["train"]) == 2 and len(splits["val"]) == 1 and not set(splits["train"]) & set(splits["val"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert not metrics["validation"]["seen_in_training"]
    assert "also learnt from these validation cases" not in (tmp_path / "run" / "report.html").read_text()


def test_bf16_on_a_cpu_without_bfloat16_instructions_warns(tmp_path, monkeypatch):
    from medlearn.tasks.segment import train as segment_train

    monkeypatch.setattr(segment_train, "native_bf16", lambda: False)
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=32)
    said = []
    overrides = {**TINY_2D, "train.max_epochs": 1, "train.steps_per_epoch": 2, "train.precision": "bf16",
                 "train.ensemble": 1}
    segment_train.train_segmentation(data, tmp_path / "run", overrides, progress=False, echo=said.append)
    assert any("bf16" in line and "emulated" in line for line in said)
