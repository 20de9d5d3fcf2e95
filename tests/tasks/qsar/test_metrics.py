"""QSAR metrics (evaluation.regression / evaluation.multitask): NaN-masked per task, CIs over molecules."""

import numpy as np
from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

from medlearn.evaluation.multitask import binary_scores, multitask_binary_metrics, weighted_average_precision
from medlearn.evaluation.regression import regression_metrics, regression_scores


def test_regression_metrics_masked():
    y = np.array([[1.0, np.nan], [2.0, 1.0], [3.0, 2.0]])
    p = np.array([[1.0, 100.0], [2.0, 1.0], [5.0, 2.0]])
    m = regression_metrics(y, p, ["a", "b"], n_boot=0)
    assert np.isclose(m["per_task"]["a"]["rmse"]["value"], np.sqrt(4 / 3))
    assert m["per_task"]["b"]["rmse"]["value"] == 0.0  # the NaN row (error 99) is ignored
    assert np.isclose(m["rmse"]["value"], np.sqrt(4 / 3) / 2)
    assert np.isclose(m["per_task"]["a"]["mae"]["value"], 2 / 3)
    assert m["rmse"]["ci95"] is None  # no bootstrap asked
    assert np.isclose(regression_scores(y, p)["rmse"], np.sqrt(4 / 3) / 2)


def test_classification_metrics_per_task_and_mean():
    y = np.array([[0, 1], [1, 1], [0, np.nan], [1, 1]], dtype=float)
    s = np.array([[0.1, 0.5], [0.9, 0.5], [0.2, 0.5], [0.15, 0.5]])
    m = multitask_binary_metrics(y, s, ["a", "b"], n_boot=0)
    assert m["per_task"]["a"]["roc_auc"]["value"] == 0.75
    assert m["per_task"]["b"]["roc_auc"]["value"] is None  # one class only: skipped, not 0.5
    assert m["per_task"]["b"]["skipped"] == "one class only"
    assert m["roc_auc"]["value"] == 0.75 and m["tasks_scored"] == 1
    assert 0 < m["pr_auc"]["value"] <= 1
    assert binary_scores(y, s)["roc_auc"] == 0.75


def test_point_values_match_scikit_learn_and_cis_cover_them():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(150, 2))
    p = y + rng.normal(scale=0.5, size=y.shape)
    y[:15, 1] = np.nan
    m = regression_metrics(y, p, ["u", "v"], n_boot=300, seed=1)
    ok = ~np.isnan(y[:, 1])
    assert np.isclose(m["per_task"]["v"]["r2"]["value"], r2_score(y[ok, 1], p[ok, 1]))
    for key in ("rmse", "mae", "r2"):
        lo, hi = m[key]["ci95"]
        assert lo < m[key]["value"] < hi
    labels = (y > 0).astype(float)
    labels[:15, 1] = np.nan
    scores = np.round(1 / (1 + np.exp(-p)), 1)  # ties, as probabilities often have
    c = multitask_binary_metrics(labels, scores, ["u", "v"], n_boot=300)
    assert np.isclose(c["per_task"]["v"]["roc_auc"]["value"], roc_auc_score(labels[ok, 1], scores[ok, 1]))
    assert np.isclose(c["per_task"]["v"]["pr_auc"]["value"], average_precision_score(labels[ok, 1], scores[ok, 1]))
    lo, hi = c["roc_auc"]["ci95"]
    assert lo < c["roc_auc"]["value"] < hi and c["bootstrap"]["n_boot"] == 300


def test_weighted_average_precision_is_sklearns_on_the_expanded_sample():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60).astype(float)
    s = np.round(rng.random(60), 1)
    w = rng.integers(0, 3, (4, 60)).astype(float)
    expected = [average_precision_score(y, s, sample_weight=row) for row in w]
    np.testing.assert_allclose(weighted_average_precision(y, s, w), expected)


def test_too_few_molecules_give_no_ci():
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], n_boot=100)
    assert m["rmse"]["ci95"] is None and "not estimable" in m["rmse"]["ci_note"]
