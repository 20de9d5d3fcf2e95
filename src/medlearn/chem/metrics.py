"""QSAR metrics, NaN-masked per task.

Regression: RMSE, MAE, R². Classification: ROC-AUC and PR-AUC (average precision) per task and
their mean over the tasks that have both classes in the evaluated rows (as in ANCHORS.md).
Inputs are ``(N, T)`` arrays (or ``(N,)``); NaN in ``y_true`` marks a missing label.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, mean_absolute_error, r2_score, roc_auc_score


def _2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a[:, None] if a.ndim == 1 else a


def regression_metrics(y_true, y_pred, task_names: list[str] | None = None) -> dict:
    """``{"rmse", "mae", "r2"}`` (means over tasks) plus ``per_task``."""
    y_true, y_pred = _2d(y_true), _2d(y_pred)
    names = task_names or [f"task{j}" for j in range(y_true.shape[1])]
    per = {}
    for j, name in enumerate(names):
        m = ~np.isnan(y_true[:, j])
        if m.sum() == 0:
            continue
        t, p = y_true[m, j], y_pred[m, j]
        per[name] = {"rmse": float(np.sqrt(np.mean((t - p) ** 2))), "mae": float(mean_absolute_error(t, p)),
                     "r2": float(r2_score(t, p)) if m.sum() > 1 else float("nan"), "n": int(m.sum())}
    out = {k: float(np.mean([v[k] for v in per.values()])) if per else float("nan") for k in ("rmse", "mae", "r2")}
    out["per_task"] = per
    return out


def classification_metrics(y_true, y_score, task_names: list[str] | None = None) -> dict:
    """``{"roc_auc", "pr_auc"}`` (means over scorable tasks) plus ``per_task``."""
    y_true, y_score = _2d(y_true), _2d(y_score)
    names = task_names or [f"task{j}" for j in range(y_true.shape[1])]
    per = {}
    for j, name in enumerate(names):
        m = ~np.isnan(y_true[:, j])
        t, s = y_true[m, j], y_score[m, j]
        if m.sum() == 0 or len(np.unique(t)) < 2:
            per[name] = {"roc_auc": None, "pr_auc": None, "n": int(m.sum()), "skipped": "one class only"}
            continue
        per[name] = {"roc_auc": float(roc_auc_score(t, s)), "pr_auc": float(average_precision_score(t, s)),
                     "n": int(m.sum()), "positives": int(t.sum())}
    scored = [v for v in per.values() if v.get("roc_auc") is not None]
    out = {"roc_auc": float(np.mean([v["roc_auc"] for v in scored])) if scored else float("nan"),
           "pr_auc": float(np.mean([v["pr_auc"] for v in scored])) if scored else float("nan"),
           "per_task": per}
    return out


def qsar_metrics(task_type: str, y_true, y_pred, task_names: list[str] | None = None) -> dict:
    if task_type == "classification":
        return classification_metrics(y_true, y_pred, task_names)
    return regression_metrics(y_true, y_pred, task_names)


def primary_metric(task_type: str) -> tuple[str, bool]:
    """(name, higher_is_better) used for model choice on the validation set."""
    return ("roc_auc", True) if task_type == "classification" else ("rmse", False)
