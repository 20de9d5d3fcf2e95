import numpy as np

from medlearn.chem.metrics import classification_metrics, regression_metrics


def test_regression_metrics_masked():
    y = np.array([[1.0, np.nan], [2.0, 1.0], [3.0, 2.0]])
    p = np.array([[1.0, 100.0], [2.0, 1.0], [5.0, 2.0]])
    m = regression_metrics(y, p, ["a", "b"])
    assert np.isclose(m["per_task"]["a"]["rmse"], np.sqrt(4 / 3))
    assert m["per_task"]["b"]["rmse"] == 0.0  # the NaN row (error 99) is ignored
    assert np.isclose(m["rmse"], np.sqrt(4 / 3) / 2)
    assert np.isclose(m["per_task"]["a"]["mae"], 2 / 3)


def test_classification_metrics_per_task_and_mean():
    y = np.array([[0, 1], [1, 1], [0, np.nan], [1, 1]], dtype=float)
    s = np.array([[0.1, 0.5], [0.9, 0.5], [0.2, 0.5], [0.15, 0.5]])
    m = classification_metrics(y, s, ["a", "b"])
    assert m["per_task"]["a"]["roc_auc"] == 0.75
    assert m["per_task"]["b"]["roc_auc"] is None  # one class only: skipped, not 0.5
    assert m["roc_auc"] == 0.75
    assert 0 < m["pr_auc"] <= 1
