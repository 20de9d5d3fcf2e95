"""Synthetic pairs with a known field, and registration metrics with {"value", "ci95"} entries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medlearn.evaluation.registration import (
    folding_percent,
    global_ncc,
    jacobian_determinant,
    mutual_information,
    pair_metrics,
    registration_metrics,
    tre_landmarks,
)
from medlearn.tasks.register.synthetic import DeformationSettings, make_synthetic_pair, synthetic_pairs
from medlearn.tasks.register.transforms import warp, warp_labels
from tests.tasks.register.conftest import smooth_image

QUIET = DeformationSettings(bias=0.0, gamma=0.0, noise=0.0)


@pytest.mark.parametrize("kind", ["gaussian", "bspline"])
def test_synthetic_pair_has_the_true_field(kind):
    img = smooth_image((32, 32), 4, sigma=2.5)
    settings = DeformationSettings(kind=kind, smoothness=6, bias=0.0, gamma=0.0, noise=0.0)
    yy, xx = np.mgrid[:32, :32]
    disk = ((xx - 16) ** 2 + (yy - 15) ** 2 < 81).astype(int)
    pair = make_synthetic_pair(img, disk, seed=3, settings=settings)
    assert pair.known_ddf.shape == (2, 32, 32) and pair.fixed_label.shape == (1, 32, 32)
    u = torch.tensor(pair.known_ddf)[None]
    aligned = warp(torch.tensor(pair.moving)[None], u).numpy()[0, 0]
    inner = (slice(4, -4), slice(4, -4))
    err_true = np.abs(aligned - pair.fixed[0])[inner].mean()
    err_none = np.abs(pair.moving[0] - pair.fixed[0])[inner].mean()
    assert err_true < 0.25 * err_none
    assert folding_percent(jacobian_determinant(pair.known_ddf)) == 0.0
    moved = warp_labels(torch.tensor(pair.moving_label)[None].long(), u).numpy()[0, 0]

    def dice(a: np.ndarray) -> float:
        return 2 * ((a == 1) & (pair.fixed_label[0] == 1)).sum() / ((a == 1).sum() + (pair.fixed_label[0] == 1).sum())

    assert dice(moved) > 0.9 and dice(moved) > dice(pair.moving_label[0]) + 0.05


def test_synthetic_pairs_are_seeded_and_splits_differ():
    img = smooth_image((16, 16, 16), 5)
    a = synthetic_pairs(img, n=2, split="train", seed=0)
    b = synthetic_pairs(img, n=2, split="train", seed=0)
    c = synthetic_pairs(img, n=2, split="test", seed=0)
    assert np.array_equal(a[0].fixed, b[0].fixed) and np.array_equal(a[1].known_ddf, b[1].known_ddf)
    assert not np.allclose(a[0].known_ddf, c[0].known_ddf) and not np.allclose(a[0].known_ddf, a[1].known_ddf)
    noisy = make_synthetic_pair(img, seed=1)
    clean = make_synthetic_pair(img, seed=1, settings=QUIET)
    assert np.allclose(noisy.known_ddf, clean.known_ddf) and not np.allclose(noisy.fixed, clean.fixed)


def test_pair_metrics_values():
    img = smooth_image((24, 24), 0)
    lab = (img > 0.5).astype(np.int32) + (img > 0.7)
    zero = np.zeros((2, 24, 24), np.float32)
    m = pair_metrics(img, img, img, zero, fixed_label=lab, warped_label=lab, moving_label=lab, seconds=0.5)
    assert m["dice"] == pytest.approx(1.0) and m["hd95"] == pytest.approx(0.0) and set(m["per_label"]) == {1, 2}
    assert m["folding_percent"] == 0.0 and m["ncc_after"] == pytest.approx(1.0) and m["seconds"] == 0.5
    square = np.zeros((24, 24), np.int32)
    square[6:16, 5:15] = 1
    shifted = np.zeros_like(square)
    shifted[8:18, 5:15] = 1
    m2 = pair_metrics(img, np.roll(img, 2, 0), img, zero, fixed_label=square, warped_label=shifted, spacing=(2.0, 1.0))
    assert m2["dice"] == pytest.approx(0.8) and m2["hd95"] == pytest.approx(4.0, abs=0.01)  # 2 voxels of 2 mm
    assert m2["ncc_before"] < m2["ncc_after"] and m2["mi_before"] < m2["mi_after"]
    # TRE: landmarks, and a known field (mm through the spacing)
    u = np.zeros((2, 24, 24), np.float32)
    u[0] = 1.0
    assert np.allclose(tre_landmarks(u, [[5, 5], [10, 12]], [[6, 5], [11, 15]], (1.0, 2.0)), [0.0, 6.0])
    m3 = pair_metrics(img, img, img, u, true_ddf=np.zeros_like(u), spacing=(2.0, 1.0))
    assert m3["tre_mm"] == pytest.approx(2.0) and m3["tre_mm_before"] == 0.0
    assert global_ncc(img, 1 - img) == pytest.approx(-1.0) and mutual_information(img, img) > 1.0


def test_pair_metrics_count_folding_from_the_jacobian():
    fold = np.zeros((2, 16, 16))
    fold[0, 6:10] = np.linspace(3, -3, 4)[:, None]
    m = pair_metrics(np.zeros((16, 16)), np.zeros((16, 16)), np.zeros((16, 16)), fold)
    expected = 100 * float((jacobian_determinant(fold) <= 0).mean())
    assert m["folding_percent"] == pytest.approx(expected) and m["folding_percent"] > 0


def test_registration_metrics_entries():
    rng = np.random.default_rng(0)
    pairs = [{"dice": float(v), "tre_mm": float(t), "folding_percent": 0.0,
              "per_label": {1: {"dice": float(v), "hd95": math.nan if k == 0 else 1.0}}}
             for k, (v, t) in enumerate(zip(rng.uniform(0.6, 0.9, 12), rng.uniform(1, 3, 12), strict=True))]
    out = registration_metrics(pairs, n_boot=200, seed=1)
    assert out["n"] == 12 and "ncc_before" not in out
    for key in ("dice", "tre_mm", "folding_percent"):
        entry = out[key]
        assert set(entry) >= {"value", "ci95"} and entry["n"] == 12
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi
    assert out["dice"]["value"] == pytest.approx(np.mean([p["dice"] for p in pairs]))
    hd = out["per_label"]["1"]["hd95"]
    assert hd["n"] == 11 and hd["value"] == pytest.approx(1.0)  # the NaN pair is skipped
    few = registration_metrics(pairs[:3], n_boot=200)
    assert few["dice"]["ci95"] is None and "not estimable" in few["dice"]["ci_note"]
    assert registration_metrics(pairs, n_boot=0)["dice"]["ci95"] is None


def test_fields_made_on_a_coarser_grid_stay_exact():
    img = smooth_image((32, 40), 7, sigma=2.5)
    pair = make_synthetic_pair(img, seed=2, settings=QUIET, field_factor=4)
    assert pair.known_ddf.shape == (2, 32, 40) and pair.fixed.shape == (1, 32, 40)
    aligned = warp(torch.tensor(pair.moving)[None], torch.tensor(pair.known_ddf)[None]).numpy()[0, 0]
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(aligned - pair.fixed[0])[inner].mean() < 0.25 * np.abs(pair.moving[0] - pair.fixed[0])[inner].mean()
