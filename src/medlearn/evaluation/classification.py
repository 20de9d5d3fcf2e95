"""Classification metrics with 95% percentile-bootstrap confidence intervals.

AUC follows the MedMNIST v2 definition (Yang et al., Scientific Data 2023): binary = ROC AUC of the
score of class 1; multi-class (and ordinal) = mean of the one-vs-rest AUCs; multi-label = mean over
labels of the per-label AUC. Accuracy thresholds the class-1 score at ``threshold`` (binary,
multi-label) or takes the argmax (multi-class, ordinal). ECE is top-label (Guo et al. 2017).

Point estimates come from scikit-learn (``roc_auc_score``, ``confusion_matrix``,
``cohen_kappa_score``) and :mod:`medlearn.evaluation.calibration`. Confidence intervals are a
percentile bootstrap (Efron 1979) computed for all resamples at once: each resample is a row of
multiplicities (:func:`~medlearn.evaluation.bootstrap.bootstrap_counts`), and every metric here is a
ratio of weighted sums (AUC through the Mann-Whitney statistic, rates through weighted confusion
matrices), so 1000 resamples of 1000 samples take well under a second. Undefined resamples (e.g. no
positive drawn) give NaN and are left out of the percentiles.

Shapes:
    ``binary``: ``y_true (N,)`` in {0, 1}; ``proba (N, 2)`` softmax or ``(N,)`` class-1 score.
    ``multiclass``: ``y_true (N,)`` in 0..K-1; ``proba (N, K)``.
    ``multilabel``: ``y_true (N, K)`` 0/1, NaN = label missing (left out for that label);
    ``proba (N, K)`` sigmoid outputs.
    ``ordinal``: as multiclass, plus the MAE of the predicted class and quadratic-weighted kappa
    (Cohen 1968).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medlearn.evaluation.bootstrap import CHUNK_ELEMENTS, bootstrap_counts, ci_entry, nanmean
from medlearn.evaluation.calibration import confidence_and_correct, expected_calibration_error

__all__ = [
    "PER_CLASS_METRICS",
    "SCALAR_METRICS",
    "TASKS",
    "classification_metrics",
    "per_class_rows",
    "summary_rows",
    "weighted_auc",
]

TASKS = ("binary", "multiclass", "multilabel", "ordinal")
#: Scalar metrics in report order (``mae`` and ``qwk`` only for ordinal tasks).
SCALAR_METRICS = (
    "auc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "fpr",
    "fnr",
    "ece",
    "mae",
    "qwk",
)
PER_CLASS_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "ece")



# ---------------------------------------------------------------------------------------------
# Vectorised building blocks: ``weights`` is (B, N), one row of sample multiplicities per resample.
# ---------------------------------------------------------------------------------------------
def _rowwise_bincount(index: np.ndarray, weights: np.ndarray, minlength: int) -> np.ndarray:
    """``out[b, j] = sum_i weights[b, i] * (index[i] == j)``, shape ``(B, minlength)``."""
    b = weights.shape[0]
    if minlength <= 64:
        onehot = np.zeros((index.shape[0], minlength))
        onehot[np.arange(index.shape[0]), index] = 1.0
        return weights @ onehot
    flat = (index[None, :] + (np.arange(b) * minlength)[:, None]).ravel()
    return np.bincount(flat, weights=weights.ravel(), minlength=b * minlength).reshape(b, minlength)


def weighted_auc(y01: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``score`` for the 0/1 target ``y01`` under each row of sample ``weights``.

    Mann-Whitney form: AUC = P(score_pos > score_neg) + 0.5 P(tie), with integer weights acting as
    multiplicities (identical to ``sklearn.metrics.roc_auc_score`` on the expanded sample).

    Args:
        y01: ``(N,)`` 0/1 targets.
        score: ``(N,)`` scores.
        weights: ``(B, N)`` non-negative weights.

    Returns:
        ``(B,)`` AUCs; NaN where a row has no positive or no negative weight.
    """
    _, rank = np.unique(score, return_inverse=True)
    rank = rank.reshape(-1)
    n_levels = int(rank.max()) + 1 if rank.size else 0
    pos = _rowwise_bincount(rank, weights * (y01 == 1), n_levels)
    neg = _rowwise_bincount(rank, weights * (y01 == 0), n_levels)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _weighted_confusion(y: np.ndarray, pred: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """``(B, K, K)`` confusion matrices (rows = true, columns = predicted)."""
    return _rowwise_bincount(y * k + pred, weights, k * k).reshape(-1, k, k)


def _weighted_ece(conf: np.ndarray, correct: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = _rowwise_bincount(bins, weights * (correct - conf)[None, :], n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(gap).sum(axis=1) / weights.sum(axis=1)


def _rates(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class rates from ``(B, K, K)`` confusion matrices; each value ``(B, K)`` (or ``(B,)``)."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = cm.sum(axis=(1, 2))[:, None]
    tn = total - support - predicted + tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "sensitivity": tp / support,
            "specificity": tn / (total - support),
            "precision": tp / predicted,
            "accuracy": tp.sum(axis=1) / total[:, 0],
        }


def _quadratic_kappa(cm: np.ndarray) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa from ``(B, K, K)`` confusion matrices (Cohen 1968)."""
    k = cm.shape[1]
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = (i - j) ** 2 / max(k - 1, 1) ** 2
    total = cm.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = cm.sum(axis=2)[:, :, None] * cm.sum(axis=1)[:, None, :] / total[:, None, None]
        return 1.0 - (w * cm).sum(axis=(1, 2)) / (w * expected).sum(axis=(1, 2))


def _nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return nanmean(x, axis)


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------
def _prepare(y_true: Any, proba: Any, task: str) -> tuple[np.ndarray, np.ndarray]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or infinite values")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    if y.shape[0] == 0:
        raise ValueError("no samples to evaluate")
    if task == "multilabel":
        y = y.astype(np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if p.ndim == 1:
            p = p[:, None]
        if y.shape != p.shape:
            raise ValueError(f"multilabel y_true {y.shape} and proba {p.shape} must have the same shape (N, K)")
        ok = np.isnan(y) | (y == 0) | (y == 1)
        if not ok.all():
            raise ValueError("multilabel y_true must be 0, 1 or NaN (missing)")
        return y, p
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{task} y_true must be (N,), got shape {y.shape}")
    if not np.all(np.isfinite(y.astype(np.float64))) or np.any(y.astype(np.float64) % 1 != 0):
        raise ValueError(f"{task} y_true must hold integer class indices")
    y = y.astype(np.int64)
    if task == "binary":
        if p.ndim == 2 and p.shape[1] == 2:
            p = p[:, 1]
        elif p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        if p.ndim != 1:
            raise ValueError(f"binary proba must be (N,) or (N, 2), got shape {np.asarray(proba).shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"binary y_true must be 0/1, found {sorted(set(np.unique(y).tolist()) - {0, 1})}")
        return y, p
    if p.ndim != 2:
        raise ValueError(f"{task} proba must be (N, K), got shape {p.shape}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"{task} y_true must be in 0..{p.shape[1] - 1} (proba has {p.shape[1]} columns)")
    return y, p


# ---------------------------------------------------------------------------------------------
# Metrics for one set of weights (B resamples) or the point estimate (sklearn)
# ---------------------------------------------------------------------------------------------
def _single_label(
    y: np.ndarray, p: np.ndarray, task: str, threshold: float, n_bins: int, weights: np.ndarray | None
) -> dict[tuple[str, ...], np.ndarray]:
    """Binary / multiclass / ordinal metrics; ``weights=None`` = point estimate via scikit-learn."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

    binary = task == "binary"
    k = 2 if binary else p.shape[1]
    pred = (p > threshold).astype(np.int64) if binary else p.argmax(axis=1)
    class_scores = [1.0 - p, p] if binary else [p[:, c] for c in range(k)]
    out: dict[tuple[str, ...], np.ndarray] = {}

    if weights is None:
        cm = confusion_matrix(y, pred, labels=np.arange(k))[None].astype(np.float64)
        aucs = []
        for c in range(k):
            yc = (y == c).astype(np.int64)
            aucs.append(roc_auc_score(yc, class_scores[c]) if 0 < yc.sum() < yc.size else np.nan)
        auc_c = np.array(aucs, dtype=np.float64)[None]
        ece = np.array([expected_calibration_error(y, p, n_bins)])
    else:
        cm = _weighted_confusion(y, pred, weights, k)
        auc_c = np.stack([weighted_auc((y == c).astype(np.int64), class_scores[c], weights) for c in range(k)], 1)
        conf, correct = confidence_and_correct(y, p)
        ece = _weighted_ece(conf, correct, weights, n_bins)

    r = _rates(cm)
    out[("auc",)] = auc_c[:, 1] if binary else _nanmean(auc_c)
    out[("accuracy",)] = r["accuracy"]
    if binary:
        sens, spec = r["sensitivity"][:, 1], r["specificity"][:, 1]
        out[("balanced_accuracy",)] = (sens + spec) / 2
    else:
        sens, spec = _nanmean(r["sensitivity"]), _nanmean(r["specificity"])
        out[("balanced_accuracy",)] = sens  # macro recall, as sklearn's balanced_accuracy_score
    out[("sensitivity",)] = sens
    out[("specificity",)] = spec
    out[("fpr",)] = 1.0 - spec
    out[("fnr",)] = 1.0 - sens
    out[("ece",)] = ece
    if task == "ordinal":
        if weights is None:
            out[("mae",)] = np.array([np.abs(pred - y).mean()])
            kappa = cohen_kappa_score(y, pred, labels=np.arange(k), weights="quadratic")
            out[("qwk",)] = np.array([kappa], dtype=np.float64)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[("mae",)] = (weights @ np.abs(pred - y).astype(np.float64)) / weights.sum(axis=1)
            out[("qwk",)] = _quadratic_kappa(cm)
    for c in range(k):
        out[("per_class", str(c), "auc")] = auc_c[:, c]
        for name in ("sensitivity", "specificity", "precision"):
            out[("per_class", str(c), name)] = r[name][:, c]
    out[("_cm",)] = cm
    return out


def _multilabel(
    y: np.ndarray, p: np.ndarray, threshold: float, n_bins: int, weights: np.ndarray | None
) -> dict[tuple[str, ...], np.ndarray]:
    """Per-label binary metrics (missing labels left out) and their means over labels."""
    n_labels = y.shape[1]
    per: dict[str, list[np.ndarray]] = {m: [] for m in ("auc", "accuracy", "sensitivity", "specificity", "ece")}
    out: dict[tuple[str, ...], np.ndarray] = {}
    cms = []
    for c in range(n_labels):
        mask = ~np.isnan(y[:, c])
        yc = np.where(mask, y[:, c], 0).astype(np.int64)
        w = mask[None, :].astype(np.float64) if weights is None else weights * mask[None, :]
        if weights is None:
            sub = _single_label(yc[mask], p[mask, c], "binary", threshold, n_bins, None) if mask.any() else None
        else:
            sub = None
        if sub is None:
            pred = (p[:, c] > threshold).astype(np.int64)
            cm = _weighted_confusion(yc, pred, w, 2)
            r = _rates(cm)
            conf, correct = confidence_and_correct(yc, p[:, c])
            sub = {
                ("auc",): weighted_auc(yc, p[:, c], w),
                ("accuracy",): r["accuracy"],
                ("sensitivity",): r["sensitivity"][:, 1],
                ("specificity",): r["specificity"][:, 1],
                ("precision",): r["precision"][:, 1],
                ("ece",): _weighted_ece(conf, correct, w, n_bins),
                ("_cm",): cm,
            }
        else:
            sub[("precision",)] = sub[("per_class", "1", "precision")]
        cms.append(sub[("_cm",)])
        for m in per:
            per[m].append(sub[(m,)])
            out[("per_class", str(c), m)] = sub[(m,)]
        out[("per_class", str(c), "precision")] = sub[("precision",)]
    for m, values in per.items():
        out[(m,)] = _nanmean(np.stack(values, axis=1))
    sens, spec = out[("sensitivity",)], out[("specificity",)]
    out[("balanced_accuracy",)] = (sens + spec) / 2
    out[("fpr",)] = 1.0 - spec
    out[("fnr",)] = 1.0 - sens
    out[("_cm",)] = np.stack(cms, axis=1)  # (B, K, 2, 2)
    return out


def _compute(
    y: np.ndarray, p: np.ndarray, task: str, threshold: float, n_bins: int, weights: np.ndarray | None
) -> dict[tuple[str, ...], np.ndarray]:
    if task == "multilabel":
        return _multilabel(y, p, threshold, n_bins, weights)
    return _single_label(y, p, task, threshold, n_bins, weights)


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _as_float(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def classification_metrics(
    y_true: Any,
    proba: Any,
    task: str,
    label_names: Sequence[str] | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_bins: int = 15,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """All classification metrics for one split, each with a 95% bootstrap CI.

    Args:
        y_true: labels, see the module docstring for shapes per task.
        proba: predicted probabilities / scores, see the module docstring.
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"`` or ``"ordinal"``.
        label_names: K names (2 for binary); default ``"0".."K-1"``.
        threshold: decision threshold on the class-1 score (binary, multilabel).
        n_boot: bootstrap resamples; 0 skips CIs (``ci95`` is None).
        seed: bootstrap seed.
        groups: optional ``(N,)`` group ids (e.g. patient ids) to resample whole groups.
        n_bins: ECE bins.
        alpha: 0.05 for 95% intervals.

    Returns:
        ``{"task", "n", "label_names", "auc", "accuracy", "sensitivity", "specificity", "fpr", "fnr",
        "balanced_accuracy", "ece", ["mae", "qwk" for ordinal], "per_class": {name: {...}},
        "confusion_matrix", "threshold", "bootstrap"}``. Scalar metrics are
        ``{"value": float | None, "ci95": [lo, hi] | None}`` (None = undefined, JSON-safe).
        Multi-class sensitivity/specificity are macro averages; multi-label ones are means over
        labels. ``confusion_matrix`` is ``K x K`` (rows = true, columns = predicted) or, for
        multi-label, ``K x 2 x 2``. Per-class entries hold one-vs-rest AUC, sensitivity
        (recall), specificity, precision and the support (multi-label: also accuracy, ECE and the
        number of non-missing labels ``n``).
    """
    y, p = _prepare(y_true, proba, task)
    n = int(y.shape[0])
    k = 2 if task == "binary" else p.shape[1]
    names = [str(c) for c in range(k)] if label_names is None else [str(x) for x in label_names]
    if len(names) != k:
        raise ValueError(f"label_names has {len(names)} names but the {task} task has {k} classes")

    point = _compute(y, p, task, threshold, n_bins, None)
    boot: dict[tuple[str, ...], list[np.ndarray]] = {}
    if n_boot > 0:
        counts = bootstrap_counts(n, n_boot, seed, groups)
        chunk = max(1, CHUNK_ELEMENTS // max(n * (k if task == "multilabel" else 1), 1))
        for start in range(0, n_boot, chunk):
            res = _compute(y, p, task, threshold, n_bins, counts[start : start + chunk])
            for key, value in res.items():
                if key != ("_cm",):
                    boot.setdefault(key, []).append(value)

    result: dict[str, Any] = {"task": task, "n": n, "label_names": names}
    if task in ("binary", "multilabel"):
        result["threshold"] = float(threshold)
    n_units = n if groups is None else int(np.unique(np.asarray(groups)).size)
    single_class = task != "multilabel" and len(np.unique(y)) < 2
    for key, value in point.items():
        if key == ("_cm",):
            continue
        resampled = np.concatenate(boot[key]) if n_boot > 0 else None
        why = "one class present" if single_class and "auc" in key else None
        path = key if key[0] != "per_class" else ("per_class", names[int(key[1])], key[2])
        _set(result, path, ci_entry(_as_float(value[0]), resampled, n_units, alpha, why))

    cm = point[("_cm",)][0].astype(np.int64)
    result["confusion_matrix"] = cm.tolist()
    for c, name in enumerate(names):
        if task == "multilabel":
            observed = ~np.isnan(y[:, c])
            result["per_class"][name]["support"] = int(np.nansum(y[:, c]))
            result["per_class"][name]["n"] = int(observed.sum())
            result["per_class"][name]["confusion_matrix"] = cm[c].tolist()
        else:
            result["per_class"][name]["support"] = int((y == c).sum())
    n_groups = None if groups is None else int(np.unique(np.asarray(groups)).size)
    # Headline metrics first, then the details, so tables and metrics.json read top-down.
    order = ["task", "n", "label_names", "threshold", *SCALAR_METRICS, "per_class", "confusion_matrix"]
    result = {key: result[key] for key in order if key in result}
    result["bootstrap"] = {
        "n_boot": int(n_boot),
        "seed": int(seed),
        "method": "percentile",
        "unit": "row" if groups is None else "group",
        "n_groups": n_groups,
    }
    return result


def summary_rows(metrics: dict[str, Any], split: str | None = None) -> list[dict[str, Any]]:
    """Rows ``{"metric": name, "value": {"value", "ci95"}}`` of the headline metrics, for
    :meth:`medlearn.evaluation.report.Report.add_table` (``split`` adds a first column)."""
    rows = []
    for name in SCALAR_METRICS:
        if name in metrics:
            row = {"split": split} if split is not None else {}
            row.update({"metric": name, "value": metrics[name]})
            rows.append(row)
    return rows


def per_class_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per class/label: ``{"class", "support", "auc", "sensitivity", ...}`` for a table."""
    rows = []
    for name, entry in metrics.get("per_class", {}).items():
        row: dict[str, Any] = {"class": name, "support": entry.get("support")}
        row.update({m: entry[m] for m in PER_CLASS_METRICS if m in entry})
        rows.append(row)
    return rows
