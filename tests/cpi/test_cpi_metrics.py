"""CI, MSE and r_m^2 on hand-checked inputs; the O(n log n) CI equals the pairwise definition."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.cpi.metrics import affinity_metrics, concordance_index, rm2


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
