"""Affinity metrics: MSE, concordance index (Gönen & Heller 2005, as used by DeepDTA) and r_m^2
(Roy et al., J. Chem. Inf. Model. 2013; Pratim Roy et al., Drug Dev. Res. 2012)."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau


def _pairs_tied(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float((counts * (counts - 1) / 2).sum())


def concordance_index(y_true, y_pred) -> float:
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


def rm2(y_true, y_pred) -> float:
    """r_m^2 = r^2 (1 - sqrt(|r^2 - r0^2|)): r^2 the squared Pearson correlation, r0^2 the coefficient
    of determination of the regression through the origin y = k * pred (Roy et al.)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    r2 = float(np.corrcoef(y, p)[0, 1] ** 2) if y.std() > 0 and p.std() > 0 else 0.0
    k = float((y * p).sum() / max((p * p).sum(), 1e-12))
    r02 = 1.0 - float(((y - k * p) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    return r2 * (1.0 - np.sqrt(abs(r2 - r02)))


def affinity_metrics(y_true, y_pred) -> dict[str, float]:
    """``{"mse", "ci", "rm2", "pearson", "n"}``."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    pearson = float(np.corrcoef(y, p)[0, 1]) if len(y) > 1 and y.std() > 0 and p.std() > 0 else float("nan")
    return {"mse": float(((y - p) ** 2).mean()), "ci": concordance_index(y, p), "rm2": float(rm2(y, p)),
            "pearson": pearson, "n": len(y)}
