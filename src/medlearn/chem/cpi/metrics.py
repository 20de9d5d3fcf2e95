"""CPI metrics: MSE, concordance index (Gönen & Heller 2005, as used by DeepDTA) and r_m² (Roy et al. 2013).

Inputs are ``(N,)`` arrays of measured and predicted affinities.
"""

from __future__ import annotations

import numpy as np


def concordance_index(y: np.ndarray, p: np.ndarray, chunk: int = 2048) -> float:
    """Fraction of pairs with y_i > y_j that are ranked the same way (ties in p count 1/2)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    num = den = 0.0
    for s in range(0, len(y), chunk):
        dy = y[s:s + chunk, None] - y[None, :]
        dp = p[s:s + chunk, None] - p[None, :]
        mask = dy > 0
        den += mask.sum()
        num += ((dp > 0) & mask).sum() + 0.5 * ((dp == 0) & mask).sum()
    return float(num / den) if den else float("nan")


def rm2(y: np.ndarray, p: np.ndarray) -> float:
    """r_m² = r² (1 - sqrt(|r² - r0²|)), r0² from the least-squares line through the origin."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    r2 = np.corrcoef(y, p)[0, 1] ** 2
    k = (y * p).sum() / (p * p).sum()
    r02 = 1 - ((y - k * p) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return float(r2 * (1 - np.sqrt(abs(r2 - r02))))


def cpi_metrics(y, p) -> dict:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {"mse": float(np.mean((y - p) ** 2)), "ci": concordance_index(y, p), "rm2": rm2(y, p), "n": int(len(y))}
