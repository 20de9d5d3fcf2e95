"""Calibration: top-label expected calibration error and reliability curves.

Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017: predictions
are binned by their confidence (the top predicted probability) into ``n_bins`` equal-width bins
over [0, 1]; ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)|.

Shapes: ``y_true`` is ``(N,)`` class indices. ``proba`` is ``(N, K)`` class probabilities, or for
binary tasks ``(N,)`` probabilities of class 1 (equivalently ``(N, 2)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["confidence_and_correct", "expected_calibration_error", "reliability_curve"]


def confidence_and_correct(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence ``(N,)`` and whether the top label is right ``(N,)`` (0/1 floats).

    ``proba`` of shape ``(N,)`` is read as the probability of class 1 of a binary task (the top label
    is 1 when ``p > 0.5``, confidence ``max(p, 1 - p)``).
    """
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        if p.shape[0] != y.shape[0]:
            raise ValueError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
        pred = (p > 0.5).astype(np.int64)
        conf = np.where(pred == 1, p, 1.0 - p)
    elif p.ndim == 2:
        if p.shape[0] != y.shape[0]:
            raise ValueError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
        pred = p.argmax(axis=1)
        conf = p.max(axis=1)
    else:
        raise ValueError(f"proba must be (N,) or (N, K), got shape {p.shape}")
    return conf, (pred == y.astype(np.int64)).astype(np.float64)


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence for equal-width bins ``(k/n, (k+1)/n]`` (0 goes to the first bin)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al. 2017) with ``n_bins`` equal-width confidence bins.

    Args:
        y_true: ``(N,)`` integer labels.
        proba: ``(N, K)`` probabilities, or ``(N,)`` / ``(N, 2)`` for binary.
        n_bins: number of bins over [0, 1] (15 as in the paper).

    Returns:
        ECE in [0, 1]; NaN for empty input.
    """
    conf, correct = confidence_and_correct(y_true, proba)
    if conf.size == 0:
        return float("nan")
    bins = _bin_index(conf, n_bins)
    gap = np.bincount(bins, weights=correct - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / conf.size)


def reliability_curve(y_true: Any, proba: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin statistics for a reliability diagram (Guo et al. 2017, fig. 1).

    Returns a dict of ``(n_bins,)`` arrays: ``bin_lower``, ``bin_upper``, ``confidence`` (mean
    confidence in the bin, NaN if empty), ``accuracy`` (NaN if empty) and ``count``.
    """
    conf, correct = confidence_and_correct(y_true, proba)
    bins = _bin_index(conf, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / count
        acc = np.bincount(bins, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "bin_lower": edges[:-1],
        "bin_upper": edges[1:],
        "confidence": mean_conf,
        "accuracy": acc,
        "count": count,
    }
