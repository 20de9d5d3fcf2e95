"""Multitask binary metrics (e.g. Tox21's 12 assays), NaN-masked, with 95% bootstrap CIs over rows.

Per task, on the rows where that task is labelled (NaN in ``y_true`` = missing): ROC-AUC and PR-AUC
(average precision, as scikit-learn defines it); the headline numbers are their means over the tasks
that hold both classes in the evaluated rows (MoleculeNet, Wu et al., Chem. Sci. 2018; the shared
``ANCHORS.md``). A task with one class is reported as skipped, never as 0.5.

Confidence intervals: a percentile bootstrap over the N rows (molecules), the same resamples for every
task, so the task-mean's CI keeps the tasks' correlation. ROC-AUC comes from the Mann-Whitney form
(:func:`~medlearn.evaluation.classification.weighted_auc`) and average precision from weighted
cumulative sums over the score levels (:func:`weighted_average_precision`), both for all resamples at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlearn.evaluation.bootstrap import ci_entry, count_chunks
from medlearn.evaluation.classification import weighted_auc
from medlearn.evaluation.regression import as_2d, masked_tasks, task_mean

__all__ = ["binary_scores", "multitask_binary_metrics", "weighted_average_precision"]


def weighted_average_precision(y01: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of ``score`` for the 0/1 target ``y01`` under each row of ``weights``.

    AP = sum over score thresholds (descending, ties as one level) of (recall step) x precision, with
    integer weights acting as multiplicities (``sklearn.metrics.average_precision_score`` on the
    expanded sample).

    Args:
        y01: ``(N,)`` 0/1 targets.
        score: ``(N,)`` scores.
        weights: ``(B, N)`` non-negative weights.

    Returns:
        ``(B,)``; NaN where a row has no positive or no negative weight.
    """
    order = np.argsort(-score, kind="stable")
    s, y = score[order], y01[order].astype(np.float64)
    w = weights[:, order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last row of each tie level
    tp = np.cumsum(w * y, axis=1)[:, last]
    fp = np.cumsum(w * (1.0 - y), axis=1)[:, last]
    step = np.diff(tp, axis=1, prepend=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (step * precision).sum(1) / tp[:, -1]
    ap[(tp[:, -1] == 0) | (fp[:, -1] == 0)] = np.nan
    return ap


def binary_scores(y_true: Any, score: Any) -> dict[str, float]:
    """Point estimates only: mean ROC-AUC and PR-AUC over the tasks with both classes (NaN if none).

    For per-epoch validation scores, where CIs are not wanted.
    """
    y, s = as_2d(y_true), as_2d(score)
    roc, pr = [], []
    for j in range(y.shape[1]):
        m = ~np.isnan(y[:, j])
        t = y[m, j]
        if len(np.unique(t)) < 2:
            continue
        ones = np.ones((1, int(m.sum())))
        roc.append(float(weighted_auc(t, s[m, j], ones)[0]))
        pr.append(float(weighted_average_precision(t, s[m, j], ones)[0]))
    return {"roc_auc": float(np.mean(roc)) if roc else float("nan"),
            "pr_auc": float(np.mean(pr)) if pr else float("nan")}


def multitask_binary_metrics(y_true: Any, score: Any, task_names: Sequence[str] | None = None, n_boot: int = 1000,
                             seed: int = 0, alpha: float = 0.05, unit: str = "row") -> dict[str, Any]:
    """ROC-AUC and PR-AUC per task and their means over the scorable tasks, each ``{"value", "ci95"}``.

    Args:
        y_true: ``(N,)`` or ``(N, T)`` labels 0/1, NaN = missing.
        score: ``(N, T)`` positive-class probabilities (finite where labelled).
        task_names: T names (default ``task0..``).
        n_boot: bootstrap resamples over the N rows; 0: no CIs.
        seed: bootstrap seed.
        unit: what a row is (``"molecule"``), recorded under ``bootstrap``.

    Returns:
        ``{"roc_auc", "pr_auc", "n", "tasks_scored", "per_task": {name: {"roc_auc", "pr_auc", "n",
        "positives"[, "skipped"]}}, "bootstrap"}``.
    """
    y, s, y0, s0, labelled, names = masked_tasks(y_true, score, task_names)
    n, t = y.shape
    scorable = [j for j in range(t) if len(np.unique(y[labelled[:, j], j])) == 2]
    metrics = {"roc_auc": weighted_auc, "pr_auc": weighted_average_precision}
    point = {j: {k: f(y0[:, j], s0[:, j], labelled[None, :, j].astype(np.float64))[0] for k, f in metrics.items()}
             for j in scorable}
    boot: dict[int, dict[str, list[np.ndarray]]] = {j: {k: [] for k in metrics} for j in scorable}
    if n_boot > 0 and n:
        for w in count_chunks(n, n_boot, seed):
            for j in scorable:
                wj = w * labelled[:, j]
                for k, f in metrics.items():
                    boot[j][k].append(f(y0[:, j], s0[:, j], wj))
    bootstrapped = n_boot > 0 and n > 0
    per_task: dict[str, Any] = {}
    for j in range(t):
        n_j = int(labelled[:, j].sum())
        if j not in point:
            skipped = [np.full(1, np.nan)] if bootstrapped else None
            per_task[names[j]] = {k: ci_entry(None, None if skipped is None else skipped[0], n_j, alpha,
                                              "one class only") for k in metrics}
            per_task[names[j]].update({"n": n_j, "skipped": "one class only"})
            continue
        per_task[names[j]] = {k: ci_entry(float(point[j][k]), np.concatenate(boot[j][k]) if bootstrapped else None,
                                          n_j, alpha, "one class drawn") for k in metrics}
        per_task[names[j]].update({"n": n_j, "positives": int(y0[labelled[:, j], j].sum())})
    out: dict[str, Any] = {}
    for k in metrics:
        value = float(np.mean([point[j][k] for j in scorable])) if scorable else None
        draws = None
        if bootstrapped:
            draws = (task_mean(np.stack([np.concatenate(boot[j][k]) for j in scorable], 1)) if scorable
                     else np.full(n_boot, np.nan))
        out[k] = ci_entry(value, draws, n, alpha, "no task holds both classes")
    out["n"] = int(n)
    out["tasks_scored"] = len(scorable)
    out["per_task"] = per_task
    out["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "method": "percentile", "unit": unit}
    return out
