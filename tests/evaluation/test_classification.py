import time

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from medlearn.evaluation.bootstrap import bootstrap_counts
from medlearn.evaluation.calibration import expected_calibration_error
from medlearn.evaluation.classification import classification_metrics, weighted_auc


def test_binary_hand_computed():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    s = np.array([0.1, 0.4, 0.6, 0.7, 0.8, 0.3, 0.9, 0.2])
    m = classification_metrics(y, s, "binary", label_names=["benign", "malignant"], n_boot=200)
    # predictions at 0.5: [0,0,1,1,1,0,1,0] -> TN=3 FP=1 FN=1 TP=3
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["accuracy"]["value"] == pytest.approx(6 / 8)
    assert m["sensitivity"]["value"] == pytest.approx(3 / 4)
    assert m["specificity"]["value"] == pytest.approx(3 / 4)
    assert m["fpr"]["value"] == pytest.approx(1 / 4) and m["fnr"]["value"] == pytest.approx(1 / 4)
    assert m["balanced_accuracy"]["value"] == pytest.approx(3 / 4)
    # AUC: pairs (pos, neg) with pos > neg: 0.7>{.1,.4,.6,.2}=4, .8:4, .3:{.1,.2}=2, .9:4 -> 14/16
    assert m["auc"]["value"] == pytest.approx(14 / 16)
    assert m["ece"]["value"] == pytest.approx(expected_calibration_error(y, s))
    assert m["per_class"]["malignant"]["support"] == 4 and m["n"] == 8
    assert m["per_class"]["malignant"]["precision"]["value"] == pytest.approx(3 / 4)
    # 8 cases: too few for a CI, said rather than printed as a narrow interval
    assert m["auc"]["ci95"] is None and "8 unit(s)" in m["auc"]["ci_note"]
    big = classification_metrics(np.tile(y, 3), np.tile(s, 3), "binary", n_boot=200)
    lo, hi = big["auc"]["ci95"]
    assert lo <= big["auc"]["value"] <= hi and big["auc"]["value"] == pytest.approx(14 / 16)
    # (N, 2) softmax input gives the same numbers
    m2 = classification_metrics(y, np.stack([1 - s, s], 1), "binary", n_boot=200)
    assert m2["auc"] == m["auc"] and m2["confusion_matrix"] == m["confusion_matrix"]


def test_perfect_classifier_and_threshold():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    m = classification_metrics(y, s, "binary", n_boot=100)
    assert m["auc"]["value"] == 1.0 and m["accuracy"]["value"] == 0.5
    m = classification_metrics(y, s, "binary", threshold=0.25, n_boot=0)
    assert m["accuracy"]["value"] == 1.0 and m["auc"]["ci95"] is None


def test_multiclass_matches_sklearn_and_medmnist_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3)) + 2 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, p, "multiclass", label_names=["a", "b", "c"], n_boot=100)
    ovr = [roc_auc_score(y == c, p[:, c]) for c in range(3)]
    assert m["auc"]["value"] == pytest.approx(np.mean(ovr))
    assert m["per_class"]["b"]["auc"]["value"] == pytest.approx(ovr[1])
    pred = p.argmax(1)
    assert m["accuracy"]["value"] == pytest.approx((pred == y).mean())
    recalls = [np.mean(pred[y == c] == c) for c in range(3)]
    assert m["sensitivity"]["value"] == pytest.approx(np.mean(recalls))
    assert m["balanced_accuracy"]["value"] == pytest.approx(np.mean(recalls))
    specs = [np.mean(pred[y != c] != c) for c in range(3)]
    assert m["specificity"]["value"] == pytest.approx(np.mean(specs))
    assert np.array(m["confusion_matrix"]).sum() == 60


def test_ordinal_mae_and_qwk():
    y = np.array([0, 1, 2, 2, 1, 0])
    pred = np.array([0, 2, 2, 1, 1, 0])
    p = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = classification_metrics(y, p, "ordinal", n_boot=100)
    assert m["mae"]["value"] == pytest.approx(2 / 6)
    assert m["qwk"]["value"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    assert m["qwk"]["ci95"] is None and "not estimable" in m["qwk"]["ci_note"]  # 6 cases
    assert classification_metrics(np.tile(y, 2), np.tile(p, (2, 1)), "ordinal", n_boot=100)["qwk"]["ci95"] is not None


def test_multilabel_with_missing_labels():
    y = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0], [np.nan, 1]])
    p = np.array([[0.9, 0.2], [0.2, 0.9], [0.6, 0.7], [0.4, 0.6], [0.5, 0.8]])
    m = classification_metrics(y, p, "multilabel", label_names=["x", "y"], n_boot=100)
    # label x: rows 0-3 -> perfect AUC, acc 1; label y: rows 0,2,3,4 -> y=[0,1,0,1], s=[.2,.7,.6,.8]: AUC 1
    assert m["per_class"]["x"]["auc"]["value"] == 1.0 and m["per_class"]["y"]["auc"]["value"] == 1.0
    assert m["per_class"]["x"]["accuracy"]["value"] == 1.0
    assert m["per_class"]["y"]["accuracy"]["value"] == pytest.approx(3 / 4)  # 0.6 is a false positive
    assert m["accuracy"]["value"] == pytest.approx((1 + 3 / 4) / 2)
    assert m["per_class"]["y"]["n"] == 4 and m["per_class"]["y"]["confusion_matrix"] == [[1, 1], [0, 2]]
    assert np.array(m["confusion_matrix"]).shape == (2, 2, 2)


def test_weighted_auc_equals_sklearn_on_resamples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = np.round(rng.uniform(size=40), 1)  # ties on purpose
    counts = bootstrap_counts(40, n_boot=20, seed=0)
    fast = weighted_auc(y, s, counts)
    for b in range(20):
        idx = np.repeat(np.arange(40), counts[b].astype(int))
        assert fast[b] == pytest.approx(roc_auc_score(y[idx], s[idx]))


def test_ci_narrows_with_more_samples_and_handles_single_class_resamples():
    rng = np.random.default_rng(2)

    def data(n):
        y = rng.integers(0, 2, n)
        return y, np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, n), 0, 1)

    small = classification_metrics(*data(40), "binary", n_boot=300)
    large = classification_metrics(*data(2000), "binary", n_boot=300)
    width = lambda m: m["auc"]["ci95"][1] - m["auc"]["ci95"][0]  # noqa: E731
    assert width(large) < width(small) / 3
    # one positive among 10: many resamples have no positive -> skipped, still a finite CI
    y = np.array([0] * 9 + [1])
    m = classification_metrics(y, np.linspace(0, 1, 10), "binary", n_boot=200)
    assert all(np.isfinite(m["auc"]["ci95"]))


def test_grouped_bootstrap_and_speed():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 1000)
    s = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.3, 1000), 0, 1)
    t0 = time.perf_counter()
    m = classification_metrics(y, s, "binary", n_boot=1000)
    assert time.perf_counter() - t0 < 10  # generous guard against an accidental Python loop
    assert m["bootstrap"]["unit"] == "row"
    g = classification_metrics(y, s, "binary", n_boot=200, groups=np.arange(1000) // 10)
    assert g["bootstrap"] == {"n_boot": 200, "seed": 0, "method": "percentile", "unit": "group", "n_groups": 100}
    assert g["auc"]["value"] == m["auc"]["value"]


def test_bad_input():
    with pytest.raises(ValueError, match="0/1"):
        classification_metrics(np.array([0, 2]), np.array([0.1, 0.2]), "binary")
    with pytest.raises(ValueError, match="task"):
        classification_metrics(np.array([0, 1]), np.array([0.1, 0.2]), "regression")
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(np.array([0, 1]), np.array([0.1, np.nan]), "binary")
    with pytest.raises(ValueError, match="label_names"):
        classification_metrics(np.array([0, 1]), np.array([0.1, 0.2]), "binary", label_names=["a"])


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict) and "value" in value and "ci95" in value:
            yield prefix + (key,), value
        elif isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "ordinal"])
def test_vectorised_ci_equals_loop_over_resamples(task):
    # The CI must be exactly the percentile interval of the point estimate recomputed on each resample.
    from medlearn.evaluation.bootstrap import bootstrap_indices

    rng = np.random.default_rng(4)
    n, k = 30, 3
    if task == "binary":
        y, p = rng.integers(0, 2, n), np.round(rng.uniform(size=n), 1)
    elif task == "multilabel":
        y = rng.integers(0, 2, (n, k)).astype(float)
        y[rng.uniform(size=(n, k)) < 0.1] = np.nan
        p = rng.uniform(size=(n, k))
    else:
        y, p = rng.integers(0, k, n), rng.dirichlet(np.ones(k), n)
    groups = np.arange(n) // 3
    m = classification_metrics(y, p, task, n_boot=40, seed=5, groups=groups)
    per_resample = [
        dict(_leaves(classification_metrics(y[idx], p[idx], task, n_boot=0)))
        for idx in bootstrap_indices(n, 40, seed=5, groups=groups)
    ]
    for path, entry in _leaves(m):
        values = np.array([r[path]["value"] for r in per_resample if r[path]["value"] is not None], float)
        if values.size == 0:
            assert entry["ci95"] == [None, None]
            continue
        np.testing.assert_allclose(entry["ci95"], np.percentile(values, [2.5, 97.5]), atol=1e-9, err_msg=str(path))
