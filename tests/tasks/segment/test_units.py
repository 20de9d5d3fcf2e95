"""Segmentation building blocks: plan rules, patch cropping, masked loss, predictor, metrics, LCC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.errors import InputError
from medlearn.evaluation.segmentation import case_metrics, pooled_binary_metrics
from medlearn.imaging.predictor import SlidingWindowPredictor, export_onnx, onnx_session
from medlearn.imaging.preprocess import preprocess_case
from medlearn.plan import parse_overrides
from medlearn.tasks.segment.augment import augment_batch
from medlearn.tasks.segment.data import CachedCase, crop_patch
from medlearn.tasks.segment.module import build_segmentation_net, masked_dice_ce
from medlearn.tasks.segment.plan import (
    SegmentationPlan,
    make_plan,
    plan_patch_size,
    plan_topology,
    should_compile,
)
from medlearn.tasks.segment.postprocess import keep_largest_component


def _fingerprint(ndim=2, shape=(565, 584), name="R", channels=1, cases=100):
    return {"ndim": ndim, "num_channels": channels, "num_training": cases, "labels": {"background": 0, "vessel": 1},
            "channel_names": {str(c): name for c in range(channels)}, "file_ending": ".png",
            "intensity": {str(c): {"name": name, "mean": 10.0, "std": 5.0, "percentile_00_5": -100.0,
                                   "percentile_99_5": 300.0} for c in range(channels)},
            "median_shape": list(shape), "median_spacing": [1.0] * ndim, "has_roi": True}


def test_plan_rules_2d_3d_and_ct():
    plan = make_plan(_fingerprint(channels=3))
    assert plan.train.patch_size == [128, 128]
    # a 2D U-Net keeps a full-resolution first stage; other networks and 3D take the plain topology
    assert plan.network.strides == [1, 2, 2, 2, 2] and plan.network.channels == [16, 16, 32, 64, 128, 256]
    assert make_plan(_fingerprint(), network="segnet").network.strides == [2, 2, 2, 2]
    assert make_plan(_fingerprint(), network="unet3d").network.strides == [1, 2, 2, 2, 2]  # 2D: the same U-Net
    assert 1 not in make_plan(_fingerprint(ndim=3, shape=(128, 128, 128))).network.strides
    assert plan.in_channels == 3 and plan.preprocessing.normalization == ["zscore"] * 3
    plan3 = make_plan(_fingerprint(ndim=3, shape=(160, 192, 224), name="CT"))
    assert plan3.train.patch_size == [64, 64, 64] and plan3.preprocessing.normalization == ["ct"]
    assert plan3.preprocessing.ct_stats[0] == [-100.0, 300.0, 10.0, 5.0]
    assert plan_patch_size([20, 400], 2)[0] < plan_patch_size([20, 400], 2)[1]
    assert plan_topology([32, 32], max_pools=4) == ([16, 32, 64], [2, 2])
    # few annotated cases: elastic deformation and erasing on top of the default augmentation
    assert plan.train.augmentation == "default" and make_plan(_fingerprint(cases=20)).train.augmentation == "strong"
    assert make_plan(_fingerprint(ndim=3, shape=(64, 64, 64), cases=1)).train.augmentation == "default"
    # a few dozen cases: the final model also learns from the validation cases; larger sets keep a hold-out
    assert make_plan(_fingerprint(cases=20)).train.train_on_val_cases and not plan.train.train_on_val_cases
    # a few dozen 2D cases and two free cores: two members trained side by side; otherwise one model
    assert make_plan(_fingerprint(cases=20), cores=2).train.ensemble == 2
    assert make_plan(_fingerprint(cases=20), cores=1).train.ensemble == 1
    assert make_plan(_fingerprint(cases=60), cores=2).train.ensemble == 1
    assert make_plan(_fingerprint(ndim=3, shape=(64, 64, 64), cases=1), cores=8).train.ensemble == 1


def test_plan_overrides_are_checked():
    plan = make_plan(_fingerprint())
    assert plan.apply_overrides({"train.batch_size": 3}).train.batch_size == 3
    with pytest.raises(InputError, match="unknown plan field"):
        plan.apply_overrides({"train.bach_size": 3})
    with pytest.raises(InputError, match="multiples of 16"):
        plan.apply_overrides({"train.patch_size": [100, 100]})
    assert SegmentationPlan.from_dict(plan.to_dict()) == plan
    # choosing the best checkpoint on validation cases the model learnt from would pick the most overfit one
    with pytest.raises(InputError, match="best_val needs unseen validation cases"):
        plan.apply_overrides({"train.train_on_val_cases": True, "train.checkpoint": "best_val"})


def test_compile_only_for_long_runs_and_on_off_survive_yaml():
    plan = make_plan(_fingerprint())
    assert should_compile(plan.train)  # default: 30 min budget, 250 000 planned steps
    assert not should_compile(make_plan(_fingerprint(ndim=3, shape=(64, 64, 64))).train)  # 2D only
    short = plan.apply_overrides({"train.max_epochs": 2, "train.steps_per_epoch": 10})
    assert not should_compile(short.train)
    # YAML 1.1 reads on/off as booleans; the plan takes them back as the strings they were
    forced = plan.apply_overrides(parse_overrides(["train.compile=on", "inference.largest_component=off"]))
    assert forced.train.compile == "on" and forced.inference.largest_component == "off"
    assert not should_compile(plan.apply_overrides(parse_overrides(["train.compile=off"])).train)


def test_precision_is_float32_unless_asked_and_old_plans_keep_it():
    plan = make_plan(_fingerprint(cases=20), cores=2)
    assert plan.train.precision == "fp32" and plan.train.ensemble == 2
    assert plan.apply_overrides({"train.precision": "bf16"}).train.precision == "bf16"
    with pytest.raises(InputError):
        plan.apply_overrides({"train.precision": "fp16"})
    legacy = plan.to_dict()  # a plan written before the field existed
    del legacy["train"]["precision"]
    assert SegmentationPlan.from_dict(legacy).train.precision == "fp32"


def test_preprocess_zscore_inside_roi_and_zero_outside():
    plan = make_plan(_fingerprint())
    image = np.random.default_rng(0).normal(50, 10, (1, 20, 20)).astype(np.float32)
    roi = np.zeros((20, 20), np.uint8)
    roi[5:15, 5:15] = 1
    pre = preprocess_case("x", image, (1.0, 1.0), plan.preprocessing, roi=roi)
    inside = pre.image[0][roi > 0]
    assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-3
    assert np.all(pre.image[0][roi == 0] == 0)


def test_clahe_raises_local_contrast_in_dark_regions():
    plain_plan = make_plan(_fingerprint(channels=3, name="G"))
    plan = plain_plan.apply_overrides(parse_overrides(["preprocessing.normalization=[clahe,clahe,clahe]"]))
    rng = np.random.default_rng(0)
    background = np.linspace(20, 200, 64, dtype=np.float32)[None, None, :]  # dark left, bright right
    image = np.repeat(background + rng.normal(0, 2, (1, 64, 64)).astype(np.float32), 3, axis=0)
    image[:, 30:34, 4:12] += 10.0  # a faint vessel in the dark part
    roi = np.ones((64, 64), np.uint8)
    plain = preprocess_case("x", image, (1.0, 1.0), plain_plan.preprocessing, roi=roi).image[0]
    clahe = preprocess_case("x", image, (1.0, 1.0), plan.preprocessing, roi=roi).image[0]
    assert abs(clahe.mean()) < 1e-4 and abs(clahe.std() - 1) < 1e-3
    contrast = lambda x: x[30:34, 4:12].mean() - x[20:26, 4:12].mean()  # noqa: E731
    assert contrast(clahe) > 2 * contrast(plain) > 0
    with pytest.raises(InputError, match="normalization"):
        plan.apply_overrides(parse_overrides(["preprocessing.normalization=[clahe,zscor,clahe]"]))


def test_preprocess_resamples_to_target_spacing():
    plan = make_plan(_fingerprint(ndim=3, shape=(8, 8, 8)))
    plan.preprocessing.target_spacing = [1.0, 1.0, 1.0]
    pre = preprocess_case("x", np.ones((1, 8, 8, 4), np.float32), (1.0, 1.0, 2.0), plan.preprocessing,
                          label=np.ones((8, 8, 4), np.uint8))
    assert pre.image.shape == (1, 8, 8, 8) and pre.label.shape == (8, 8, 8) and pre.original_shape == (8, 8, 4)


def test_crop_patch_pads_outside_the_image():
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    case = CachedCase("c", image, (image[0] > 50).astype(np.uint8), None, {}, None)
    img, lab, w = crop_patch(case, np.array([0, 0]), (8, 8))
    assert img.shape == (1, 8, 8) and w[:4, :4].sum() == 0 and w[4:, 4:].all()
    assert img[0, 4, 4] == image[0, 0, 0] and lab.dtype == np.int64


def test_masked_loss_ignores_voxels_outside_the_roi():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    label = torch.randint(0, 2, (2, 8, 8))
    weight = torch.zeros(2, 8, 8)
    weight[:, 2:6, 2:6] = 1
    changed = label.clone()
    changed[:, 0, :] = 1 - changed[:, 0, :]
    assert torch.isclose(masked_dice_ce(logits, label, weight), masked_dice_ce(logits, changed, weight))
    assert not torch.isclose(masked_dice_ce(logits, label, torch.ones_like(weight)),
                             masked_dice_ce(logits, changed, torch.ones_like(weight)))


def test_augmentation_moves_label_with_image():
    gen = torch.Generator().manual_seed(1)
    label = torch.zeros(8, 16, 16, dtype=torch.long)
    for i in range(8):  # a different rectangle per sample: a mix-up between samples would show
        label[i, i:i + 4, 2 * (i % 3):2 * (i % 3) + 7] = 1
    image = torch.stack([label.float() * 5, label.float() * -3], 1)  # two distinguishable channels
    weight = torch.ones(8, 16, 16)
    for _ in range(4):
        img, lab, w = augment_batch(image.clone(), label.clone(), weight.clone(), "light", gen)
        assert torch.equal(img[:, 0] > 2.5, lab == 1) and torch.equal(img[:, 1] < -1.5, lab == 1)
        assert torch.equal(lab.sum((1, 2)), label.sum((1, 2)))
    img, lab, w = augment_batch(image.clone(), label.clone(), weight.clone(), "strong", gen)
    assert img.shape == (8, 2, 16, 16) and lab.dtype == torch.long and set(lab.unique().tolist()) <= {0, 1}


def test_sampler_flips_keep_image_label_and_weight_aligned():
    from medlearn.tasks.segment.augment import flip_rotate_sample

    rng = np.random.default_rng(0)
    label = np.zeros((16, 16), np.int64)
    label[2:5, 3:11] = 1
    image = np.stack([label * 5.0, label * -3.0]).astype(np.float32)
    weight = (label * 0.5 + 0.25).astype(np.float32)
    seen = set()
    for _ in range(12):
        img, lab, w = flip_rotate_sample(image, label, weight, rng)
        assert np.array_equal(img[0] > 2.5, lab == 1) and np.array_equal(img[1] < -1.5, lab == 1)
        assert np.array_equal(w > 0.5, lab == 1) and img.flags["C_CONTIGUOUS"]
        seen.add(lab.tobytes())
    assert len(seen) > 3  # it does transform


def _small_net_plan():
    plan = make_plan(_fingerprint(shape=(32, 32)))
    return plan.apply_overrides({"network.channels": [4, 8, 16], "network.strides": [2, 2],
                                 "train.patch_size": [32, 32]})


def test_whole_image_pass_matches_monai_sliding_window_and_onnx(tmp_path):
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    plan = _small_net_plan()
    net = build_segmentation_net(plan).eval()
    image = np.random.default_rng(0).normal(size=(1, 40, 36)).astype(np.float32)
    whole = SlidingWindowPredictor(net, [32, 32], plan.divisor).logits(image)
    with torch.no_grad():  # one window covering the image = the whole-image pass
        ref = sliding_window_inference(torch.from_numpy(image)[None], (40, 36), 1, net)[0]
    assert torch.allclose(whole, ref, atol=1e-5)
    session = onnx_session(export_onnx(net, tmp_path / "m.onnx", 1, 2, plan.divisor))
    fast = SlidingWindowPredictor(None, [32, 32], plan.divisor, session=session).logits(image)
    assert torch.allclose(whole, fast, atol=1e-4)
    windowed = SlidingWindowPredictor(net, [16, 16], plan.divisor, whole_image_max_voxels=0)(image)
    assert windowed.shape == (2, 40, 36) and np.allclose(windowed.sum(0), 1, atol=1e-5)
    mirrored = SlidingWindowPredictor(net, [32, 32], plan.divisor, mirror=True)(image)
    assert mirrored.shape == (2, 40, 36)


def test_case_metrics_and_roi():
    gt = np.zeros((10, 10), np.uint8)
    gt[2:6, 2:6] = 1
    pred = gt.copy()
    pred[8, 8] = 1  # a false positive outside the ROI
    roi = np.ones((10, 10), bool)
    roi[7:, 7:] = False
    m = case_metrics(pred, gt, 2, roi=roi, label_names=["bg", "fg"])["fg"]
    assert m["dice"] == 1.0 and m["iou"] == 1.0 and m["hd95"] == 0.0
    m = case_metrics(pred, gt, 2, label_names=["bg", "fg"])["fg"]
    assert m["dice"] == pytest.approx(2 * 16 / 33) and m["hd95"] > 0


def test_pooled_binary_metrics():
    probs = [np.array([[0.9, 0.2], [0.8, 0.1]])]
    truth = [np.array([[1, 0], [0, 0]])]
    m = pooled_binary_metrics(probs, truth, [None])
    assert m["auc"] == 1.0 and m["sensitivity"] == 1.0 and m["specificity"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["pixel_error"] == 0.25


def test_keep_largest_component():
    labels = np.zeros((10, 10), np.uint8)
    labels[1:5, 1:5] = 1
    labels[8, 8] = 1
    out = keep_largest_component(labels, 2)
    assert out[8, 8] == 0 and out[1:5, 1:5].all()


def _one_hot_dice_ce(logits, label, weight, smooth=1e-5):
    """The textbook form (one-hot labels, Milletari batch Dice over foreground + masked CE)."""
    total = weight.sum().clamp_min(1.0)
    ce = (torch.nn.functional.cross_entropy(logits, label, reduction="none") * weight).sum() / total
    k = logits.shape[1]
    probs = torch.softmax(logits, 1)[:, 1:]
    onehot = torch.nn.functional.one_hot(label, k).movedim(-1, 1)[:, 1:].float()
    w = weight.unsqueeze(1)
    dims = (0, *range(2, logits.ndim))
    inter = (probs * onehot * w).sum(dims)
    denom = (probs * w).sum(dims) + (onehot * w).sum(dims)
    return ce + 1 - ((2 * inter + smooth) / (denom + smooth)).mean()


@pytest.mark.parametrize("shape, k", [((2, 8, 9), 2), ((2, 6, 5, 4), 7)])
def test_masked_dice_ce_matches_the_one_hot_form_in_value_and_gradient(shape, k):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(shape[0], k, *shape[1:], generator=gen, requires_grad=True)
    label = torch.randint(0, k, shape, generator=gen)
    weight = (torch.rand(shape, generator=gen) > 0.3).float()
    ours = masked_dice_ce(logits, label, weight)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    reference = _one_hot_dice_ce(logits, label, weight)
    (grad_ref,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("field, value, allowed", [("train.max_epochs", -1, ">= 1"), ("train.ensemble", 0, ">= 1"),
                                                   ("train.lr", -1.0, "> 0"), ("train.batch_size", 0, ">= 1"),
                                                   ("train.max_minutes", 0.0, "> 0"),
                                                   ("train.val_fraction", 1.5, ">= 0, <= 0.9")])
def test_plan_ranges_are_checked_where_the_plan_is_built(field, value, allowed):
    plan = make_plan(_fingerprint())
    with pytest.raises(InputError, match=f"'{field}' is {value}; allowed: {allowed}"):
        plan.apply_overrides({field: value})


def test_case_summaries_have_bootstrap_cis_over_cases_and_leave_undefined_hd95_out():
    from medlearn.evaluation.segmentation import summarise_cases

    rng = np.random.default_rng(0)
    per_case = {f"c{i}": {"a": {"dice": float(d), "iou": 0.5, "hd95": float(2 + i), "asd": 1.0},
                          "b": {"dice": 0.5, "iou": 0.3, "hd95": float("nan") if i < 3 else 4.0, "asd": 2.0}}
                for i, d in enumerate(rng.uniform(0.6, 0.9, 12))}
    summary = summarise_cases(per_case, n_boot=500, seed=0)
    dice = summary["classes"]["a"]["dice"]
    assert dice["value"] == pytest.approx(np.mean([c["a"]["dice"] for c in per_case.values()]))
    lo, hi = dice["ci95"]
    assert lo < dice["value"] < hi and hi - lo < 0.2
    hd = summary["classes"]["b"]["hd95"]  # 9 finite cases: too few for a CI
    assert hd["value"] == 4.0 and hd["ci95"] is None and "9 unit(s)" in hd["ci_note"]
    assert summary["mean_dice"]["value"] == pytest.approx(np.mean([(c["a"]["dice"] + 0.5) / 2
                                                                   for c in per_case.values()]))
    assert summarise_cases(per_case, n_boot=0)["classes"]["a"]["dice"]["ci95"] is None
    few = summarise_cases(dict(list(per_case.items())[:3]), n_boot=100)
    assert few["classes"]["a"]["dice"]["ci95"] is None and "not estimable" in few["classes"]["a"]["dice"]["ci_note"]


def test_pooled_metrics_with_cis_match_the_plain_ones_and_the_exact_auc():
    from medlearn.evaluation.segmentation import PooledBinary

    rng = np.random.default_rng(1)
    pooled = PooledBinary()
    probs, truths = [], []
    for _ in range(12):
        truth = (rng.random((20, 20)) < 0.3).astype(np.uint8)
        prob = np.clip(0.6 * truth + rng.normal(0.2, 0.2, truth.shape), 0, 1)
        pooled.add(prob, truth)
        probs.append(prob)
        truths.append(truth)
    plain = pooled_binary_metrics(probs, truths, [None] * 12)
    with_ci = pooled.metrics(n_boot=300, seed=0)
    for name, value in plain.items():
        assert with_ci[name]["value"] == pytest.approx(value)
        lo, hi = with_ci[name]["ci95"]
        assert lo - 2e-3 <= value <= hi + 2e-3, name  # the resampled AUCs are binned (2048 bins)


def test_largest_component_is_chosen_on_validation_dice():
    from medlearn.tasks.segment.postprocess import choose_postprocessing

    raw = {"a": {"fg": {"dice": 0.7}}, "b": {"fg": {"dice": 0.8}}}
    better = {"a": {"fg": {"dice": 0.9}}, "b": {"fg": {"dice": 0.8}}}
    assert choose_postprocessing(raw, better, "auto")["largest_component"]
    assert not choose_postprocessing(better, raw, "auto")["largest_component"]
    assert not choose_postprocessing(raw, better, "off")["largest_component"]
    assert choose_postprocessing(better, raw, "on")["largest_component"]


@pytest.mark.parametrize("name, expected", [("a.jpg", ".png"), ("a.jpeg", ".png"), ("a.tif", ".png"), ("a.bmp", ".png"),
                                            ("a.png", ".png"), ("a.nii.gz", ".nii.gz"), ("a.nrrd", ".nrrd"),
                                            ("a.mha", ".mha")])
def test_masks_of_2d_rasters_are_always_png(tmp_path, name, expected):
    from medlearn.data.images import ImageMeta
    from medlearn.imaging.inputs import ImageInput
    from medlearn.tasks.segment.model import output_suffix

    path = tmp_path / name
    path.write_bytes(b"x")
    meta = ImageMeta(str(path), "x", (4, 4), (1.0, 1.0), np.eye(4))
    assert output_suffix(ImageInput("a", [path]), meta) == expected
    assert output_suffix(ImageInput("a", array=np.zeros((1, 4, 4))), None) == ".npy"
