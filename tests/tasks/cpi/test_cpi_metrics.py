"""CI, MSE and r_m^2 on hand-checked inputs; the O(n log n) CI equals the pairwise definition; the
bootstrap CIs over pairs (every resample scored as its expanded sample would be)."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.evaluation.affinity import (
    _resampled_ci,
    _weighted_regression,
    affinity_metrics,
    affinity_metrics_ci,
    concordance_index,
    interaction_metrics_ci,
    rm2,
)
from medlearn.evaluation.bootstrap import bootstrap_counts


def _pairwise_ci(y, p):
    num = den = 0.0
    for i in range(len(y)):
        for j in range(len(y)):
            if y[i] > y[j]:
                den += 1
                num += 1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0
    return num / den


def test_ci_perfect_reversed_constant():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert concordance_index(y, y * 10) == 1.0
    assert concordance_index(y, -y) == 0.0
    assert concordance_index(y, np.zeros(5)) == 0.5


def test_ci_by_hand_with_ties():
    y = np.array([1.0, 2.0, 2.0, 3.0])
    p = np.array([0.1, 0.3, 0.2, 0.3])
    # pairs with y_i > y_j: (2,1)x2, (3,1), (3,2)x2 -> 5; concordant: 0.3>0.1, 0.2>0.1, 0.3>0.1,
    # 0.3>0.2, and 0.3 == 0.3 counts 1/2 -> 4.5 / 5
    assert concordance_index(y, p) == pytest.approx(0.9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ci_matches_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, 80).astype(float)  # many ties in both
    p = rng.integers(0, 7, 80).astype(float)
    assert concordance_index(y, p) == pytest.approx(_pairwise_ci(y, p), abs=1e-12)


def test_rm2_and_mse():
    y = np.array([5.0, 6.0, 7.0, 8.0])
    assert rm2(y, y) == pytest.approx(1.0)
    m = affinity_metrics(y, y + 1.0)
    assert m["mse"] == pytest.approx(1.0)
    assert m["ci"] == 1.0
    # shifted predictions: r^2 = 1 but the regression through the origin is worse -> r_m^2 < 1
    assert m["rm2"] < 1.0


def test_weighted_metrics_equal_the_metrics_of_the_expanded_resample():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 60).astype(float)
    p = y + rng.normal(0, 1.5, 60)
    w = bootstrap_counts(60, 5, seed=3)
    fast = _weighted_regression(y, p, w)
    ranks = [np.unique(a, return_inverse=True)[1].reshape(-1) for a in (y, p)]
    ci = _resampled_ci(ranks[0], ranks[1], w)
    for b in range(5):
        rows = np.repeat(np.arange(60), w[b].astype(int))
        slow = affinity_metrics(y[rows], p[rows])
        for key in ("mse", "rm2", "pearson"):
            assert fast[key][b] == pytest.approx(slow[key], abs=1e-9), key
        assert ci[b] == pytest.approx(slow["ci"], abs=1e-12)


def test_metrics_with_cis_over_pairs():
    rng = np.random.default_rng(1)
    y = rng.normal(6, 1, 300)
    p = y + rng.normal(0, 0.5, 300)
    m = affinity_metrics_ci(y, p, n_boot=200, seed=0)
    point = affinity_metrics(y, p)
    assert m["n"] == 300
    for key in ("ci", "mse", "rm2", "pearson"):
        lo, hi = m[key]["ci95"]
        assert m[key]["value"] == pytest.approx(point[key]) and lo < m[key]["value"] < hi, key
    assert affinity_metrics_ci(y, p, n_boot=200, seed=0) == m  # seeded
    assert affinity_metrics_ci(y, p, n_boot=0)["ci"]["ci95"] is None
    few = affinity_metrics_ci(y[:5], p[:5], n_boot=50)
    assert few["ci"]["ci95"] is None and "not estimable" in few["ci"]["ci_note"]
    flat = affinity_metrics_ci(np.full(30, 5.0), p[:30], n_boot=50)
    assert flat["ci"]["value"] is None and "equal" in flat["ci"]["ci_note"]


def test_interaction_metrics_with_cis():
    rng = np.random.default_rng(2)
    y = (rng.random(200) > 0.5).astype(float)
    score = 0.6 * y + 0.4 * rng.random(200)
    m = interaction_metrics_ci(y, score, n_boot=100)
    assert m["roc_auc"]["value"] > 0.9 and m["roc_auc"]["ci95"][0] <= m["roc_auc"]["value"] <= m["roc_auc"]["ci95"][1]
    assert m["pr_auc"]["ci95"] is not None and m["n"] == 200
    one = interaction_metrics_ci(np.ones(20), score[:20], n_boot=20)
    assert one["roc_auc"]["value"] is None and "one class" in one["roc_auc"]["ci_note"]


def test_grouped_cis_resample_whole_groups():
    # 30 proteins whose pairs share one error each: pairs are not independent, so the interval over
    # proteins must be wider than the one over pairs, and 8 proteins are too few for any interval
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(30), 20)
    y = rng.normal(6, 1, 600)
    p = y + rng.normal(0, 0.6, 30)[groups] + rng.normal(0, 0.1, 600)
    pairs = affinity_metrics_ci(y, p, n_boot=300, seed=0)
    grouped = affinity_metrics_ci(y, p, n_boot=300, seed=0, groups=groups)
    assert grouped["n"] == 600 and grouped["n_groups"] == 30 and "n_groups" not in pairs
    assert grouped["mse"]["value"] == pytest.approx(pairs["mse"]["value"])  # the point estimate is the same
    width = {k: m["mse"]["ci95"][1] - m["mse"]["ci95"][0] for k, m in (("pairs", pairs), ("grouped", grouped))}
    assert width["grouped"] > 2 * width["pairs"]
    few = affinity_metrics_ci(y[:160], p[:160], n_boot=50, groups=groups[:160])
    assert few["mse"]["ci95"] is None and "8 unit(s)" in few["mse"]["ci_note"]
    labels = (y > 6).astype(float)
    auc = interaction_metrics_ci(labels, p, n_boot=100, groups=groups)
    assert auc["n_groups"] == 30 and auc["roc_auc"]["ci95"] is not None
