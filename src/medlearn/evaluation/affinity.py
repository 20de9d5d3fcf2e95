"""Compound-protein metrics with 95% bootstrap CIs over pairs.

Affinity (regression): MSE, the concordance index (Gönen & Heller, Biometrika 2005, as used by
DeepDTA, Öztürk et al. 2018), r_m^2 (Roy et al., J. Chem. Inf. Model. 2013; Pratim Roy et al., Drug
Dev. Res. 2012) and Pearson's r. Interaction (0/1 values): ROC AUC and PR AUC (average precision).

Point estimates: :func:`concordance_index`, :func:`rm2`, :func:`affinity_metrics` (plain floats, also
used per epoch in validation). With CIs: :func:`affinity_metrics_ci` / :func:`interaction_metrics_ci`
give every headline metric as ``{"value", "ci95"}`` (:func:`~medlearn.evaluation.bootstrap.ci_entry`);
the unit resampled is the pair. Resamples are rows of multiplicities
(:func:`~medlearn.evaluation.bootstrap.bootstrap_counts`): MSE, r_m^2, Pearson and ROC AUC are weighted
sums evaluated for all resamples at once; the CI and PR AUC are computed per resample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from medlearn.evaluation.bootstrap import ci_entry, count_chunks

__all__ = ["affinity_metrics", "affinity_metrics_ci", "concordance_index", "interaction_metrics_ci", "rm2"]

# Resamples are drawn in chunks so a (chunk, N) multiplicity matrix stays around 32 MB (KIBA's test fold


def _pairs_tied(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float((counts * (counts - 1) / 2).sum())


def concordance_index(y_true: Any, y_pred: Any) -> float:
    """CI = P(pred_i > pred_j | y_i > y_j), prediction ties counting 1/2; pairs tied in ``y`` ignored.

    O(n log n) through Kendall's tau-b (scipy's merge-sort count): with n0 = n(n-1)/2 pairs, n1 pairs
    tied in y and n2 tied in the prediction, concordant - discordant = tau_b * sqrt((n0-n1)(n0-n2))
    and CI = 1/2 + (C - D) / (2 (n0 - n1)). Returns NaN when every y is equal.
    """
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape} vs {p.shape}")
    n0 = len(y) * (len(y) - 1) / 2
    n1, n2 = _pairs_tied(y), _pairs_tied(p)
    if n0 - n1 <= 0:
        return float("nan")
    if n0 - n2 <= 0:  # constant prediction: every pair is a tie
        return 0.5
    tau = kendalltau(y, p, variant="b").statistic
    c_minus_d = tau * np.sqrt((n0 - n1) * (n0 - n2))
    return round(float(np.clip(0.5 + c_minus_d / (2 * (n0 - n1)), 0.0, 1.0)), 12)  # drop float dust


def rm2(y_true: Any, y_pred: Any) -> float:
    """r_m^2 = r^2 (1 - sqrt(|r^2 - r0^2|)): r^2 the squared Pearson correlation, r0^2 the coefficient
    of determination of the regression through the origin y = k * pred (Roy et al.)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    r2 = float(np.corrcoef(y, p)[0, 1] ** 2) if y.std() > 0 and p.std() > 0 else 0.0
    k = float((y * p).sum() / max((p * p).sum(), 1e-12))
    r02 = 1.0 - float(((y - k * p) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    return r2 * (1.0 - np.sqrt(abs(r2 - r02)))


def affinity_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Point estimates ``{"mse", "ci", "rm2", "pearson", "n"}``."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    pearson = float(np.corrcoef(y, p)[0, 1]) if len(y) > 1 and y.std() > 0 and p.std() > 0 else float("nan")
    return {"mse": float(((y - p) ** 2).mean()), "ci": concordance_index(y, p), "rm2": float(rm2(y, p)),
            "pearson": pearson, "n": len(y)}


def _weighted_regression(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """MSE, r_m^2 and Pearson r under each row of multiplicities ``w (B, N)`` (the definitions above on
    the expanded resample), ``(B,)`` each; NaN where undefined (Pearson with a constant side)."""
    total = w.sum(1)
    mean_y, mean_p = w @ y / total, w @ p / total
    syy, spp, syp = w @ (y * y), w @ (p * p), w @ (y * p)
    var_y = np.maximum(syy / total - mean_y**2, 0.0)
    var_p = np.maximum(spp / total - mean_p**2, 0.0)
    cov = syp / total - mean_y * mean_p
    defined = (var_y > 1e-12) & (var_p > 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(defined, cov / np.sqrt(var_y * var_p), np.nan)
    r2 = np.where(defined, r**2, 0.0)  # rm2() takes r^2 = 0 when a side is constant
    k = syp / np.maximum(spp, 1e-12)
    residual = syy - 2 * k * syp + k**2 * spp
    r02 = 1.0 - residual / np.maximum(total * var_y, 1e-12)
    return {"mse": w @ ((y - p) ** 2) / total, "rm2": r2 * (1.0 - np.sqrt(np.abs(r2 - r02))), "pearson": r}


def _resampled_ci(y_rank: np.ndarray, p_rank: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The concordance index on each resample (``w (B, N)`` multiplicities), ``(B,)``.

    Each resample is expanded and scored with the same O(n log n) :func:`concordance_index`, on integer
    ranks (the CI depends on order and ties only). Chosen over a cheaper approximation because it is
    fast enough for every resample asked: 1000 resamples of Davis's 5,010 test pairs take ~2 s on this
    project's CPU, of KIBA's ~19,700 ~8 s.
    """
    index = np.arange(len(y_rank))
    out = np.empty(len(w))
    for b, counts in enumerate(w.astype(np.int64)):
        rows = np.repeat(index, counts)
        out[b] = concordance_index(y_rank[rows], p_rank[rows])
    return out


def affinity_metrics_ci(y_true: Any, y_pred: Any, n_boot: int = 1000, seed: int = 0,
                        groups: Any = None) -> dict[str, Any]:
    """``{"ci", "mse", "rm2", "pearson"}`` as ``{"value", "ci95"}`` (95% percentile bootstrap over pairs,
    ``n_boot`` resamples; ``n_boot=0``: no CIs) and ``"n"``, the number of pairs.

    ``groups`` (one label per pair, e.g. the protein of a cold-protein test set): resample whole groups,
    since pairs of one held-out protein are not independent; ``"n_groups"`` is added and a CI needs
    that many units (:data:`~medlearn.evaluation.bootstrap.MIN_CI_UNITS`)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape} vs {p.shape}")
    n = len(y)
    point = affinity_metrics(y, p) if n else {k: math.nan for k in ("mse", "ci", "rm2", "pearson")}
    resampled: dict[str, list[np.ndarray]] = {k: [] for k in ("ci", "mse", "rm2", "pearson")}
    if n_boot > 0 and n:
        y_rank = np.unique(y, return_inverse=True)[1].reshape(-1)
        p_rank = np.unique(p, return_inverse=True)[1].reshape(-1)
        for w in count_chunks(n, n_boot, seed, groups):
            for key, values in _weighted_regression(y, p, w).items():
                resampled[key].append(values)
            resampled["ci"].append(_resampled_ci(y_rank, p_rank, w))
    why = {"ci": "every measured value is equal", "pearson": "a constant measured or predicted value"}
    out: dict[str, Any] = {}
    units = _units(n, groups)
    for key in ("ci", "mse", "rm2", "pearson"):
        values = np.concatenate(resampled[key]) if resampled[key] else None
        out[key] = ci_entry(point[key], values, units, undefined=why.get(key))
    out["n"] = n
    if groups is not None:
        out["n_groups"] = units
    return out


def _units(n: int, groups: Any) -> int:
    """What the bootstrap resamples: pairs, or the distinct groups."""
    return n if groups is None else len(np.unique(np.asarray(groups)))


def interaction_metrics_ci(y_true: Any, score: Any, n_boot: int = 1000, seed: int = 0,
                           groups: Any = None) -> dict[str, Any]:
    """0/1 interactions: ``{"roc_auc", "pr_auc"}`` as ``{"value", "ci95"}`` (bootstrap over pairs, or over
    ``groups`` as in :func:`affinity_metrics_ci`) and ``"n"``.

    ROC AUC through the Mann-Whitney statistic for all resamples at once; PR AUC is scikit-learn's
    average precision with the multiplicities as sample weights.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    from medlearn.evaluation.classification import weighted_auc

    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n = len(y)
    both = n > 0 and len(np.unique(y)) == 2
    roc = float(roc_auc_score(y, s)) if both else math.nan
    pr = float(average_precision_score(y, s)) if both else math.nan
    roc_b: list[np.ndarray] = []
    pr_b: list[float] = []
    if n_boot > 0 and both:
        for w in count_chunks(n, n_boot, seed, groups):
            roc_b.append(weighted_auc(y, s, w))
            for row in w:
                positives = float(row @ y)
                pr_b.append(float(average_precision_score(y, s, sample_weight=row))
                            if 0 < positives < row.sum() else math.nan)
    elif n_boot > 0:  # undefined on the data: say so (ci_note) rather than report no bootstrap
        roc_b, pr_b = [np.full(n_boot, math.nan)], [math.nan] * n_boot
    why, units = "one class present", _units(n, groups)
    out = {"roc_auc": ci_entry(roc, np.concatenate(roc_b) if roc_b else None, units, undefined=why),
           "pr_auc": ci_entry(pr, np.asarray(pr_b) if pr_b else None, units, undefined=why), "n": n}
    if groups is not None:
        out["n_groups"] = units
    return out
