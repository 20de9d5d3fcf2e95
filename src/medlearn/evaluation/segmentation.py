"""Segmentation metrics: per case, pooled over pixels, and summaries with 95% bootstrap CIs over cases.

Per case and foreground class (:func:`case_metrics`): Dice, IoU, HD95 and average surface distance
(MONAI, in mm using the voxel spacing). For binary tasks also pooled-pixel AUC, F1 (= pooled Dice),
sensitivity, specificity, accuracy and pixel error, the usual retinal-vessel protocol (e.g. DRIVE,
Staal et al. 2004) (:func:`pooled_binary_metrics`, :class:`PooledBinary`). With a ROI mask only voxels
inside it count. Label maps are ``(*S)`` integers, probabilities ``(K, *S)`` or a foreground map ``(*S)``.

Confidence intervals resample *cases* (the unit that varies between studies; pixels of one image are
strongly correlated), as a percentile bootstrap (Efron 1979) computed for all resamples at once from
``bootstrap_counts`` multiplicities: case means are weighted sums, pooled rates are ratios of summed
per-case confusion counts, and the pooled AUC is computed from per-case score histograms (its point
value is the exact one from scikit-learn). Every entry is ``{"value", "ci95"}``
(:func:`medlearn.evaluation.bootstrap.ci_entry`: not estimable below 10 cases).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medlearn.evaluation.bootstrap import bootstrap_counts, ci_entry

__all__ = ["CASE_METRICS", "PooledBinary", "case_metrics", "pooled_binary_metrics", "summarise_cases"]

#: per-case metrics per foreground class; Dice and HD95 get CIs in :func:`summarise_cases`
CASE_METRICS = ("dice", "iou", "hd95", "asd")
WITH_CI = ("dice", "hd95")
AUC_BINS = 2048


def _surface_metrics(pred: np.ndarray, gt: np.ndarray, num_classes: int, spacing: Sequence[float]
                     ) -> tuple[list[float], list[float]]:
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.nn.functional.one_hot(torch.from_numpy(pred.astype(np.int64)), num_classes).movedim(-1, 0)[None]
    g = torch.nn.functional.one_hot(torch.from_numpy(gt.astype(np.int64)), num_classes).movedim(-1, 0)[None]
    spacing_list = [float(s) for s in spacing]
    with warnings.catch_warnings():  # MONAI warns about its own internal arguments and about empty classes
        warnings.simplefilter("ignore")
        hd = compute_hausdorff_distance(p, g, include_background=False, percentile=95, spacing=spacing_list)
        asd = compute_average_surface_distance(p, g, include_background=False, symmetric=True,
                                               spacing=spacing_list)
    return [float(v) for v in hd[0]], [float(v) for v in asd[0]]


def case_metrics(pred: np.ndarray, gt: np.ndarray, num_classes: int, roi: np.ndarray | None = None,
                 spacing: Sequence[float] | None = None, label_names: Sequence[str] | None = None,
                 surface: bool = True) -> dict[str, dict[str, float]]:
    """Dice, IoU (and HD95, ASD when ``surface``) per foreground class for one case.

    ``pred``/``gt``: ``(*S)`` integer label maps; ``roi``: ``(*S)`` bool (outside -> background in both).
    Empty prediction and empty truth give Dice 1; HD95/ASD are NaN when either is empty.
    """
    if roi is not None:
        pred = np.where(roi, pred, 0)
        gt = np.where(roi, gt, 0)
    names = list(label_names or [f"label_{k}" for k in range(num_classes)])
    out: dict[str, dict[str, float]] = {}
    hd, asd = [math.nan] * (num_classes - 1), [math.nan] * (num_classes - 1)
    if surface:
        hd, asd = _surface_metrics(pred, gt, num_classes, spacing or (1.0,) * pred.ndim)
    for k in range(1, num_classes):
        p, g = pred == k, gt == k
        inter, ps, gs = int(np.sum(p & g)), int(p.sum()), int(g.sum())
        dice = 1.0 if ps + gs == 0 else 2 * inter / (ps + gs)
        iou = 1.0 if ps + gs == 0 else inter / (ps + gs - inter)
        out[names[k]] = {"dice": dice, "iou": iou,
                         "hd95": hd[k - 1] if math.isfinite(hd[k - 1]) else math.nan,
                         "asd": asd[k - 1] if math.isfinite(asd[k - 1]) else math.nan}
    return out


def _flat(array: np.ndarray, roi: np.ndarray | None) -> np.ndarray:
    return array[roi] if roi is not None else array.ravel()


def pooled_binary_metrics(probabilities: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                          rois: Sequence[np.ndarray | None], threshold: float = 0.5) -> dict[str, float]:
    """Pooled-pixel metrics over all cases for a binary task (plain values, no CIs).

    ``probabilities``: foreground probability maps ``(*S)``; ``truths``: ``(*S)`` 0/1; ``rois``: bool or None.
    """
    pooled = PooledBinary(threshold)
    for p, t, r in zip(probabilities, truths, rois, strict=True):
        pooled.add(p, t, r)
    return pooled.values()


@dataclass
class PooledBinary:
    """Pooled-pixel binary metrics accumulated case by case, with case-bootstrap CIs.

    Keeps per case the confusion counts at ``threshold`` and histograms of the foreground scores of
    positive and negative pixels (for the resampled AUCs), and the pooled scores for the exact AUC.
    """

    threshold: float = 0.5
    counts: list[tuple[int, int, int, int]] = field(default_factory=list)  # per case: tp, fp, fn, tn
    positive_hist: list[np.ndarray] = field(default_factory=list)
    negative_hist: list[np.ndarray] = field(default_factory=list)
    _scores: list[np.ndarray] = field(default_factory=list, repr=False)
    _targets: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, probability: np.ndarray, truth: np.ndarray, roi: np.ndarray | None = None) -> None:
        """One case: foreground probability ``(*S)``, truth ``(*S)`` (> 0 = foreground), ROI ``(*S)`` bool."""
        scores = _flat(np.asarray(probability, np.float32), roi)
        target = _flat(np.asarray(truth), roi) > 0
        pred = scores >= self.threshold
        tp, fp = int(np.sum(pred & target)), int(np.sum(pred & ~target))
        fn, tn = int(np.sum(~pred & target)), int(np.sum(~pred & ~target))
        self.counts.append((tp, fp, fn, tn))
        bins = np.clip((scores * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        self.positive_hist.append(np.bincount(bins[target], minlength=AUC_BINS).astype(np.float64))
        self.negative_hist.append(np.bincount(bins[~target], minlength=AUC_BINS).astype(np.float64))
        self._scores.append(scores)
        self._targets.append(target)

    def __len__(self) -> int:
        return len(self.counts)

    def values(self) -> dict[str, float]:
        """``auc`` (exact), ``f1``, ``sensitivity``, ``specificity``, ``accuracy``, ``pixel_error``."""
        from sklearn.metrics import roc_auc_score

        scores, target = np.concatenate(self._scores), np.concatenate(self._targets)
        auc = float(roc_auc_score(target, scores)) if 0 < target.sum() < target.size else math.nan
        rates = _rates(np.asarray(self.counts, np.float64).sum(0)[None])
        return {"auc": auc, **{k: float(v[0]) for k, v in rates.items()}}

    def metrics(self, n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
        """Every metric of :meth:`values` as ``{"value", "ci95"}`` (cases resampled)."""
        values = self.values()
        n = len(self)
        if n_boot <= 0 or n == 0:
            return {k: ci_entry(v, None, n) for k, v in values.items()}
        weights = bootstrap_counts(n, n_boot, seed)  # (B, n)
        resampled = _rates(weights @ np.asarray(self.counts, np.float64))
        resampled["auc"] = _binned_auc(weights @ np.stack(self.positive_hist), weights @ np.stack(self.negative_hist))
        return {k: ci_entry(v, resampled[k], n, undefined="one class among the pixels") for k, v in values.items()}


def _rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Rates from summed ``(B, 4)`` confusion counts (tp, fp, fn, tn); NaN where undefined."""
    tp, fp, fn, tn = counts.T
    total = counts.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
                "sensitivity": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
                "specificity": np.where(tn + fp > 0, tn / (tn + fp), np.nan),
                "accuracy": (tp + tn) / np.maximum(total, 1), "pixel_error": (fp + fn) / np.maximum(total, 1)}


def _binned_auc(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of ``(B, bins)`` score histograms (ties within a bin count 1/2)."""
    below = np.cumsum(negative, axis=1) - negative
    pairs = positive.sum(1) * negative.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (positive * (below + 0.5 * negative)).sum(1) / pairs, np.nan)


def _weighted_nanmean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of ``values (n,)`` under each row of ``weights (B, n)``, NaN values left out."""
    finite = np.isfinite(values)
    w = weights[:, finite]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w.sum(1) > 0, w @ values[finite] / w.sum(1), np.nan)


def _mean_entry(values: np.ndarray, weights: np.ndarray | None, what: str) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    value = float(finite.mean()) if finite.size else None
    resampled = None if weights is None else _weighted_nanmean(values, weights)
    return ci_entry(value, resampled, int(finite.size), undefined=what)


def summarise_cases(per_case: Mapping[str, Mapping[str, Mapping[str, float]]], n_boot: int = 1000, seed: int = 0
                    ) -> dict[str, Any]:
    """Means over cases with 95% CIs (cases resampled together, so classes stay paired).

    ``per_case``: ``{case: {class: {metric: value}}}`` from :func:`case_metrics`. Returns
    ``{"classes": {class: {"dice": {"value", "ci95"}, "hd95": {...}, "iou": mean, "asd": mean}},
    "mean_dice": {"value", "ci95"}}`` (``mean_dice``: each case's Dice averaged over the foreground
    classes, then over cases). HD95 is undefined for a case where the class is absent from the
    prediction or the truth; such cases are left out of its mean.
    """
    cases = list(per_case)
    if not cases:
        return {"classes": {}, "mean_dice": ci_entry(None, None, 0)}
    classes = list(per_case[cases[0]])
    weights = bootstrap_counts(len(cases), n_boot, seed) if n_boot > 0 else None
    summary: dict[str, Any] = {}
    for cls in classes:
        row: dict[str, Any] = {}
        for metric in CASE_METRICS:
            values = np.array([per_case[c][cls].get(metric, math.nan) for c in cases], np.float64)
            if metric in WITH_CI:
                row[metric] = _mean_entry(values, weights, f"{metric} is undefined in every case (class absent)")
            else:
                row[metric] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        summary[cls] = row
    mean_dice = np.array([np.mean([per_case[c][k]["dice"] for k in classes]) for c in cases], np.float64)
    return {"classes": summary, "mean_dice": _mean_entry(mean_dice, weights, "no foreground class")}
