import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medlearn.evaluation.bootstrap import bootstrap_ci, bootstrap_counts, bootstrap_indices, metric_with_ci


def _mean(x):
    return float(np.mean(x))


def test_ci_contains_estimate_and_narrows():
    rng = np.random.default_rng(1)
    small = rng.normal(size=50)
    large = rng.normal(size=2000)
    lo_s, hi_s = bootstrap_ci(_mean, small, n_boot=300)
    lo_l, hi_l = bootstrap_ci(_mean, large, n_boot=300)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3
    # width of a mean's 95% CI is about 2 * 1.96 * sd / sqrt(n)
    assert (hi_l - lo_l) == pytest.approx(2 * 1.96 * large.std() / math.sqrt(2000), rel=0.25)


def test_deterministic_and_undefined_resamples_skipped():
    y = np.array([0] * 19 + [1])
    s = np.linspace(0, 1, 20)
    a = bootstrap_ci(roc_auc_score, y, s, n_boot=200, seed=3)
    b = bootstrap_ci(roc_auc_score, y, s, n_boot=200, seed=3)
    assert a == b and np.isfinite(a).all()  # resamples without the positive are skipped
    assert bootstrap_ci(roc_auc_score, np.zeros(5, int), np.arange(5.0), n_boot=50) != bootstrap_ci(
        _mean, np.arange(5.0), n_boot=50
    )
    lo, hi = bootstrap_ci(roc_auc_score, np.zeros(5, int), np.arange(5.0), n_boot=50)
    assert math.isnan(lo) and math.isnan(hi)


def test_metric_with_ci():
    x = np.arange(10.0)
    out = metric_with_ci(_mean, x, n_boot=100)
    assert out["value"] == 4.5 and out["ci95"][0] <= 4.5 <= out["ci95"][1]
    assert metric_with_ci(_mean, x, n_boot=0) == {"value": 4.5, "ci95": None}


def test_grouped_resampling_keeps_groups_whole():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    for idx in bootstrap_indices(6, n_boot=20, seed=0, groups=groups):
        drawn = groups[idx]
        for g in "abc":  # each group appears a whole number of times
            assert np.sum(drawn == g) % np.sum(groups == g) == 0
    counts = bootstrap_counts(6, n_boot=20, seed=0, groups=groups)
    assert np.all(counts[:, 0] == counts[:, 1]) and np.all(counts[:, 3] == counts[:, 5])
    assert counts.sum(axis=1).mean() == pytest.approx(6, rel=0.5)
    # the same draws as bootstrap_indices
    for c, idx in zip(counts, bootstrap_indices(6, n_boot=20, seed=0, groups=groups), strict=True):
        np.testing.assert_array_equal(c, np.bincount(idx, minlength=6))


def test_counts_match_indices_rows():
    counts = bootstrap_counts(7, n_boot=5, seed=2)
    assert counts.shape == (5, 7) and np.all(counts.sum(axis=1) == 7)
    for c, idx in zip(counts, bootstrap_indices(7, n_boot=5, seed=2), strict=True):
        np.testing.assert_array_equal(c, np.bincount(idx, minlength=7))


def test_grouped_ci_wider_for_correlated_data():
    # 20 patients, 10 identical images each: the grouped CI must be much wider than the naive one
    rng = np.random.default_rng(0)
    per_patient = rng.normal(size=20)
    x = np.repeat(per_patient, 10)
    groups = np.repeat(np.arange(20), 10)
    naive = np.subtract(*bootstrap_ci(_mean, x, n_boot=300)[::-1])
    grouped = np.subtract(*bootstrap_ci(_mean, x, n_boot=300, groups=groups)[::-1])
    assert grouped > 2 * naive
