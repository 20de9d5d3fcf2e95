"""Regression metrics for (multitask) property prediction, NaN-masked, with 95% bootstrap CIs.

RMSE, MAE and R² per task on the rows where that task is labelled (NaN in ``y_true`` = missing), and
their means over the labelled tasks, as MoleculeNet (Wu et al., Chem. Sci. 2018) and the shared
``ANCHORS.md`` report them. Inputs are ``(N, T)`` arrays (or ``(N,)``).

Confidence intervals: a percentile bootstrap over the N rows (molecules; Efron & Tibshirani 1993,
ch. 13). Each resample is a row of multiplicities (:func:`~medlearn.evaluation.bootstrap.bootstrap_counts`)
and every metric here is a ratio of weighted sums, so all resamples are computed at once; a task-mean
on a resample averages the tasks labelled in it. Point estimates use the same formulas with unit
weights (R² is undefined — None — when the measured values of a task are all equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlearn.evaluation.bootstrap import ci_entry, count_chunks, nanmean

__all__ = ["REGRESSION_METRICS", "regression_metrics", "regression_scores", "task_mean"]

REGRESSION_METRICS = ("rmse", "mae", "r2")


def as_2d(a: Any) -> np.ndarray:
    """``(N,)`` or ``(N, T)`` -> ``(N, T)`` float64."""
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _weighted_task(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE, MAE, R² of one task's labelled rows ``y, p (n,)`` under each row of ``w (B, n)``; ``(B,)`` each."""
    total = w.sum(1)
    err = y - p
    sse, sae = w @ (err * err), w @ np.abs(err)
    sy, syy = w @ y, w @ (y * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        sst = syy - sy * sy / total
        defined = (total > 0) & (sst > 1e-12 * np.maximum(syy, 1.0))
        return {"rmse": np.where(total > 0, np.sqrt(sse / total), np.nan),
                "mae": np.where(total > 0, sae / total, np.nan),
                "r2": np.where(defined, 1.0 - sse / np.where(defined, sst, 1.0), np.nan)}


def masked_tasks(y_true: Any, y_pred: Any, task_names: Sequence[str] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(N, T)`` labels and predictions checked for shape, the same with missing labels zeroed (a weight 0
    must not meet a NaN), the ``(N, T)`` labelled mask and the T task names."""
    y, p = as_2d(y_true), as_2d(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and predictions {p.shape} differ in shape")
    names = list(task_names) if task_names is not None else [f"task{j}" for j in range(y.shape[1])]
    labelled = ~np.isnan(y)
    return y, p, np.where(labelled, y, 0.0), np.where(labelled, p, 0.0), labelled, names


def task_mean(stack: np.ndarray) -> np.ndarray:
    """``(B, T) -> (B,)``: the mean over tasks of the finite entries (NaN where a row has none)."""
    return nanmean(stack, axis=1)


def regression_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Point estimates only (plain floats; NaN where undefined): the task-means of RMSE, MAE, R².

    For per-epoch validation scores, where CIs are not wanted.
    """
    y, p = as_2d(y_true), as_2d(y_pred)
    per = []
    for j in range(y.shape[1]):
        m = ~np.isnan(y[:, j])
        if m.any():
            per.append(_weighted_task(y[m, j], p[m, j], np.ones((1, int(m.sum())))))
    return {k: float(task_mean(np.stack([d[k] for d in per], 1))[0]) if per else float("nan")
            for k in REGRESSION_METRICS}


def regression_metrics(y_true: Any, y_pred: Any, task_names: Sequence[str] | None = None, n_boot: int = 1000,
                       seed: int = 0, alpha: float = 0.05, unit: str = "row") -> dict[str, Any]:
    """RMSE, MAE and R² (task means and ``per_task``), each ``{"value", "ci95"}``.

    Args:
        y_true: ``(N,)`` or ``(N, T)`` measured values, NaN = missing label.
        y_pred: predictions of the same shape (finite where ``y_true`` is labelled).
        task_names: T names (default ``task0..``).
        n_boot: bootstrap resamples over the N rows; 0: no CIs (``ci95`` None).
        seed: bootstrap seed.
        unit: what a row is (``"molecule"``), recorded under ``bootstrap``.

    Returns:
        ``{"rmse", "mae", "r2", "n", "per_task": {name: {"rmse", "mae", "r2", "n"}}, "bootstrap"}``; a task
        without labels is left out of ``per_task`` and of the means.
    """
    y, p, y0, p0, labelled, names = masked_tasks(y_true, y_pred, task_names)
    n, t = y.shape
    tasks = [j for j in range(t) if labelled[:, j].any()]
    point = {j: _weighted_task(y0[:, j], p0[:, j], labelled[None, :, j].astype(np.float64)) for j in tasks}
    boot: dict[int, dict[str, list[np.ndarray]]] = {j: {k: [] for k in REGRESSION_METRICS} for j in tasks}
    if n_boot > 0 and n:
        for w in count_chunks(n, n_boot, seed):
            for j in tasks:
                for k, v in _weighted_task(y0[:, j], p0[:, j], w * labelled[:, j]).items():
                    boot[j][k].append(v)
    resampled = {j: {k: np.concatenate(v) for k, v in d.items()} if n_boot > 0 and n else None
                 for j, d in boot.items()}
    why = {"r2": "the measured values are all equal"}
    per_task: dict[str, Any] = {}
    for j in tasks:
        n_j = int(labelled[:, j].sum())
        per_task[names[j]] = {k: ci_entry(float(point[j][k][0]), None if resampled[j] is None else resampled[j][k],
                                          n_j, alpha, why.get(k)) for k in REGRESSION_METRICS}
        per_task[names[j]]["n"] = n_j
    out: dict[str, Any] = {}
    for k in REGRESSION_METRICS:
        value = float(task_mean(np.stack([point[j][k] for j in tasks], 1))[0]) if tasks else float("nan")
        draws = None
        if tasks and n_boot > 0 and n:
            draws = task_mean(np.stack([resampled[j][k] for j in tasks], 1))
        out[k] = ci_entry(value, draws, n, alpha, why.get(k))
    out["n"] = int(n)
    out["per_task"] = per_task
    out["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "method": "percentile", "unit": unit}
    return out
