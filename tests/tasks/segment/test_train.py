"""End-to-end segmentation training on tiny synthetic data (seconds on a CPU), through the engine's skeleton."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

import medlearn
from medlearn.data.images import read_image
from medlearn.engine.parallel import available_cores
from medlearn.errors import RunExistsError
from medlearn.io.artifact import load_artifact
from medlearn.tasks.segment.model import Segmenter
from medlearn.tasks.segment.synthetic import make_synthetic_dataset
from tests.tasks.segment.conftest import TINY_2D


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return 2 * np.sum((pred == 1) & (truth == 1)) / (np.sum(pred == 1) + np.sum(truth == 1))


def test_overfits_a_square_and_predicts_with_two_members_trained_side_by_side(run2d):
    data, run = run2d
    seg = medlearn.load_run(run)
    assert isinstance(seg, Segmenter) and seg.plan_.train.patch_size == [32, 32] and seg.run_dir_ == run
    for name in ("plan.json", "config.yaml", "versions.json", "splits.json", "model.pt", "model.onnx",
                 "metrics.json", "report.html"):
        assert (run / name).exists(), name
    image, _ = read_image(data / "imagesTr" / "case_000_0000.png")
    truth = read_image(data / "labelsTr" / "case_000.png", dtype=None)[0][0]
    assert _dice(seg.predict(image), truth) > 0.9
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["classes"]["square"]["dice"]["value"] > 0.8
    assert "largest_component" in metrics["val"]["postprocessing"]
    # two members with their own seeds, checkpoints and logs, both in the saved model
    training = metrics["training"]
    assert training["members"] == 2 and all(s > 0 for s in training["steps_per_member"])
    assert training["members_side_by_side"] == min(2, available_cores())
    for k in (0, 1):
        assert (run / "checkpoints" / f"member{k}" / "member.pt").exists()
        assert (run / "logs" / f"member{k}" / "metrics.csv").exists()
    members = seg.net_.members
    assert len(members) == 2 and not torch.equal(next(members[0].parameters()), next(members[1].parameters()))
    # three cases: the plan trains on the validation case too, and the metrics and report say so
    splits = json.loads((run / "splits.json").read_text())
    assert splits["format"] == "medlearn.splits/1" and len(splits["val"]) == 1
    assert seg.plan_.train.train_on_val_cases and metrics["val"]["seen_in_training"]
    assert training["cases_trained_on"] == 3
    assert "also learnt from these validation cases" in (run / "report.html").read_text()
    with pytest.raises(RunExistsError):
        Segmenter(overrides=TINY_2D).fit(data, run)
    # torch and ONNX Runtime paths agree on the trained model
    torch_model = Segmenter.load(run, engine="torch")
    assert torch_model.session_ is None and seg.session_ is not None
    assert np.allclose(torch_model.predict_proba(image), seg.predict_proba(image), atol=1e-4)


def test_a_truncated_onnx_file_falls_back_to_torch_with_one_warning(run2d, tmp_path, capsys):
    data, run = run2d
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    onnx = copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:2000])
    image, _ = read_image(data / "imagesTr" / "case_000_0000.png")
    reference = Segmenter.load(run, engine="torch").predict_proba(image)
    capsys.readouterr()
    broken = Segmenter.load(copy)
    assert np.allclose(broken.predict_proba(image), reference, atol=1e-5)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(onnx) in err[0] and "PyTorch" in err[0]
    assert broken.session_ is None and broken.describe()["engine"] == "torch"


def test_metrics_carry_dice_and_hd95_per_class_with_cis(run2d):
    _, run = run2d
    val = json.loads((run / "metrics.json").read_text())["val"]
    for metric in ("dice", "hd95"):
        entry = val["classes"]["square"][metric]
        assert set(entry) >= {"value", "ci95"} and entry["ci95"] is None and "not estimable" in entry["ci_note"]
    assert {"auc", "f1", "sensitivity", "specificity"} <= set(val["pooled"])
    assert len(val["per_case"]) == 1 and val["cases"] == 1


def test_evaluate_writes_an_evaluation_with_cis_and_says_what_was_trained_on(run2d, tmp_path):
    data, run = run2d
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    seg = Segmenter.load(run)
    held_out = make_synthetic_dataset(tmp_path / "held_out", n_cases=12, size=32, roi=True, seed=7)
    metrics = seg.evaluate(held_out, n_boot=200)
    saved = json.loads((run / "evaluations" / "held_out" / "metrics.json").read_text())
    assert saved["all"]["cases"] == 12 and metrics["seen_in_training"] == {"items": 0, "of": 12}
    dice = saved["all"]["classes"]["square"]["dice"]
    lo, hi = dice["ci95"]
    assert lo <= dice["value"] <= hi and dice["value"] > 0.8
    lo, hi = saved["all"]["classes"]["square"]["hd95"]["ci95"]
    assert 0 <= lo <= hi
    assert saved["all"]["pooled"]["f1"]["ci95"] is not None
    report = (run / "evaluations" / "held_out" / "report.html").read_text()
    assert "Overlays" in report and "Per case" in report
    # the training set itself: every case is one the model learnt from, and the output says so
    again = seg.evaluate(data, name="train-again", n_boot=0)
    assert again["seen_in_training"] == {"items": 3, "of": 3}
    assert "model learnt from" in (run / "evaluations" / "train-again" / "report.html").read_text()
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before


def test_the_report_has_curves_large_overlays_and_a_case_table(run2d):
    _, run = run2d
    html = (run / "report.html").read_text()
    assert "validation Dice per epoch (member0;" in html and "validation Dice per epoch (member1;" in html
    figures = sorted(p.name for p in (run / "figures").iterdir())
    assert "overlays.png" in figures and sum(n.startswith("training_curves") for n in figures) == 2
    from PIL import Image

    with Image.open(run / "figures" / "overlays.png") as im:  # a 32-px case drawn readable, not at 32 px
        assert min(im.size) >= 300
    assert "Per case" in html and "95% bootstrap CI" in html


def test_3d_api_fit_held_out_validation_and_prediction_keeps_the_nifti_affine(run3d, tmp_path):
    data, run, seg = run3d
    assert seg.run_dir_ == run and seg.metrics_["task"] == "segment"
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["train"]) == 1 and len(splits["val"]) == 1 and not set(splits["train"]) & set(splits["val"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert not metrics["val"]["seen_in_training"] and metrics["training"]["cases_trained_on"] == 1
    assert "also learnt from these validation cases" not in (run / "report.html").read_text()
    written = seg.predict_files(data, tmp_path / "out", probabilities=True)
    assert [p.name for p in written] == ["test_000.nii.gz", "test_000_probabilities.nii.gz"]
    src = nib.load(data / "imagesTs" / "test_000_0000.nii.gz")
    out = nib.load(written[0])
    assert np.allclose(out.affine, src.affine) and out.shape == src.shape
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1}
    probs = nib.load(written[1])
    assert probs.shape == (*src.shape, 2) and np.allclose(probs.affine, src.affine)
    assert "Three axial slices" in (run / "report.html").read_text()


def test_3d_overlays_show_several_slices_through_the_structures():
    from medlearn.tasks.segment.evaluate import OverlayCase
    from medlearn.tasks.segment.report import overlay_panels, slice_indices

    truth = np.zeros((20, 20, 40), np.uint8)
    truth[5:15, 5:15, 10:30] = 1
    pred = np.zeros_like(truth)
    picks = slice_indices(truth, pred)
    assert len(picks) == 3 and all(10 <= z < 30 for z in picks) and picks[0] < picks[1] < picks[2]
    panels = overlay_panels(OverlayCase("c", np.random.default_rng(0).normal(size=(1, 20, 20, 40)), truth, pred))
    assert [title for title, _ in panels] == [f"c, z={z}" for z in picks] and panels[0][1].shape == (20, 20, 3)
    assert slice_indices(np.zeros_like(truth), pred) == [20]  # nothing to show: the middle


def test_compiled_training_with_ema_saves_the_averaged_network(tmp_path):
    from medlearn.tasks.segment.module import build_segmentation_net

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=32)
    overrides = {**TINY_2D, "train.max_epochs": 1, "train.steps_per_epoch": 3, "train.compile": "on",
                 "train.ema_decay": 0.5, "train.ensemble": 1}
    seg = Segmenter(overrides=overrides, n_boot=0).fit(data, tmp_path / "run")
    saved = load_artifact(tmp_path / "run" / "model.pt", task="segment").tensors["net"]
    expected = build_segmentation_net(seg.plan_).state_dict().keys()
    assert saved.keys() == expected  # no "_orig_mod." prefixes from torch.compile
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]["steps"] == 3
    # the checkpoint holds the EMA weights as its state_dict, the raw ones apart; the model is the EMA
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=False)
    averaged = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    raw = {k.removeprefix("net."): v for k, v in ckpt["current_model_state"].items()}
    name = next(k for k in saved if k.endswith("weight") and saved[k].ndim == 4)
    assert torch.equal(saved[name], averaged[name]) and not torch.equal(saved[name], raw[name])


def _plan(data, overrides):
    from medlearn.data.msd import fingerprint_msd_dataset
    from medlearn.tasks.segment.plan import make_plan

    return make_plan(fingerprint_msd_dataset(data)).apply_overrides(overrides)


@pytest.mark.parametrize("ndim", [2, 3])
def test_channels_last_training_layout_gives_the_same_outputs_and_is_undone_after_fit(tmp_path, ndim):
    from medlearn.tasks.segment.module import SegmentationModule

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16, ndim=ndim)
    plan = _plan(data, {"network.channels": [4, 8], "network.strides": [2]})
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

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=16)
    plan = _plan(data, {"network.channels": [4, 8], "network.strides": [2], "train.precision": precision,
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


def test_bf16_on_a_cpu_without_bfloat16_instructions_warns(tmp_path, monkeypatch):
    from medlearn.tasks.segment import task as segment_task

    monkeypatch.setattr(segment_task, "native_bf16", lambda: False)
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=32)
    loaded = segment_task.TASK.load_data(str(data), {})
    plan = _plan(data, {**TINY_2D, "train.precision": "bf16"})
    said: list[str] = []
    segment_task.TASK.finish_plan(plan, loaded, None, {}, said.append)
    assert any("bf16" in line and "emulated" in line for line in said)


def test_step_timing_is_time_budgeted_from_the_evidence_and_never_compiles(tmp_path, monkeypatch):
    from medlearn.engine import compile as engine_compile
    from medlearn.engine.budget import measure_step_seconds
    from medlearn.tasks.segment import task as segment_task
    from medlearn.tasks.segment.plan import should_compile

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=2, size=32)
    loaded = segment_task.TASK.load_data(str(data), {})
    default = _plan(data, {})
    timing = segment_task.TASK.step_timing(default, loaded, None)
    # the defaults train for 30 min; DRIVE's evidence: ~7200 steps per member in 30 min on this machine
    assert not timing.fixed_steps and timing.steps_wanted == 7200
    plan3 = default.apply_overrides({"ndim": 3, "train.patch_size": [64, 64, 64], "train.max_minutes": 15,
                                     "network.strides": [2, 2, 2, 2], "network.channels": [16, 32, 64, 128, 256]})
    assert segment_task.TASK.step_timing(plan3, loaded, None).steps_wanted == 637  # 3D brain: 637 in 15 min
    small = _plan(data, {**TINY_2D, "train.max_epochs": 1000, "train.max_minutes": 30})  # compiled when trained
    assert should_compile(small.train)
    monkeypatch.setattr(engine_compile, "compiled_forward", lambda net: pytest.fail("timing compiled the network"))
    timing = segment_task.TASK.step_timing(small, loaded, None)
    assert measure_step_seconds(timing.module, timing.batch, 1, steps=1) > 0
    # a short schedule is what ends training: a fixed number of steps
    short = segment_task.TASK.step_timing(_plan(data, TINY_2D), loaded, None)
    assert short.fixed_steps and short.steps_wanted == 100


def test_training_refuses_a_dataset_whose_masks_are_all_empty_and_warns_for_some(tmp_path):
    from PIL import Image

    from medlearn.errors import InputError
    from medlearn.tasks.segment import task as segment_task

    data = make_synthetic_dataset(tmp_path / "ds", n_cases=3, size=16)
    for i in range(3):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "labelsTr" / f"case_{i:03d}.png")
    with pytest.raises(InputError, match="every label mask is empty"):
        segment_task.TASK.load_data(str(data), {})
    some = make_synthetic_dataset(tmp_path / "ds2", n_cases=3, size=16)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(some / "labelsTr" / "case_001.png")
    loaded = segment_task.TASK.load_data(str(some), {})
    said: list[str] = []
    segment_task.TASK.finish_plan(_plan(some, TINY_2D), loaded, None, {}, said.append)
    assert any("1 of 3 label masks are empty" in line for line in said)


def test_a_dataset_of_another_model_is_refused_for_evaluation(run3d, tmp_path):
    from medlearn.errors import InputError

    _, _, seg = run3d
    other = make_synthetic_dataset(tmp_path / "three_classes", n_cases=2, size=16, ndim=3)
    meta = json.loads((other / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "a": 1, "b": 2}
    (other / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="3 classes, the model predicts 2"):
        seg.evaluate(other)


def test_split_holds_out_a_share_of_the_cases_and_one_case_validates_itself(tmp_path):
    from medlearn.tasks.base import TrainRequest
    from medlearn.tasks.segment import task as segment_task

    request = TrainRequest("segment", "x", "y")
    loaded = segment_task.TASK.load_data(str(make_synthetic_dataset(tmp_path / "ds", n_cases=10, size=16)), {})
    splits = segment_task.TASK.split(loaded, request, 0)
    assert splits.sizes() == {"train": 8, "val": 2, "test": 0}
    assert segment_task.TASK.split(loaded, request, 1).to_dict()["val"] != splits.to_dict()["val"]
    loaded.val_fraction = 0.3
    assert segment_task.TASK.split(loaded, request, 0).sizes() == {"train": 7, "val": 3, "test": 0}
    one = segment_task.TASK.load_data(str(make_synthetic_dataset(tmp_path / "one", n_cases=1, size=16)), {})
    single = segment_task.TASK.split(one, request, 0)
    plan = _plan(tmp_path / "one", {"train.train_on_val_cases": False})
    assert single.sizes()["val"] == 1 and [c.name for c in segment_task.training_cases(plan, one, single)] == \
        ["case_000"]

