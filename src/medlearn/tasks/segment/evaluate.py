"""Segmentation metrics and post-processing.

Per case and foreground class: Dice, IoU, HD95 and average surface distance (MONAI, in mm using the
voxel spacing). For binary tasks additionally pooled-pixel AUC, F1 (= pooled Dice), sensitivity,
specificity and accuracy, the usual retinal-vessel protocol (e.g. DRIVE, Staal et al. 2004). With a
ROI mask only voxels inside it count. Label maps are ``(*S)`` integers, probabilities ``(K, *S)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy import ndimage


def keep_largest_component(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """For each foreground class keep only its largest connected component (others -> background)."""
    out = labels.copy()
    for k in range(1, num_classes):
        mask = labels == k
        if not mask.any():
            continue
        comps, n = ndimage.label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(comps.ravel())
        sizes[0] = 0
        out[mask & (comps != int(np.argmax(sizes)))] = 0
    return out


def _surface_metrics(pred: np.ndarray, gt: np.ndarray, num_classes: int, spacing: tuple[float, ...]
                     ) -> tuple[list[float], list[float]]:
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.nn.functional.one_hot(torch.from_numpy(pred.astype(np.int64)), num_classes).movedim(-1, 0)[None]
    g = torch.nn.functional.one_hot(torch.from_numpy(gt.astype(np.int64)), num_classes).movedim(-1, 0)[None]
    spacing_list = [float(s) for s in spacing]
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal get_mask_edges argument
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        hd = compute_hausdorff_distance(p, g, include_background=False, percentile=95, spacing=spacing_list)
        asd = compute_average_surface_distance(p, g, include_background=False, symmetric=True,
                                               spacing=spacing_list)
    return [float(v) for v in hd[0]], [float(v) for v in asd[0]]


def case_metrics(pred: np.ndarray, gt: np.ndarray, num_classes: int, roi: np.ndarray | None = None,
                 spacing: tuple[float, ...] | None = None, label_names: list[str] | None = None,
                 surface: bool = True) -> dict[str, Any]:
    """Dice, IoU (and HD95, ASD when ``surface``) per foreground class for one case.

    ``pred``/``gt``: ``(*S)`` integer label maps; ``roi``: ``(*S)`` bool (outside -> background in both).
    Empty prediction and empty truth give Dice 1; HD95/ASD are NaN when either is empty.
    """
    if roi is not None:
        pred = np.where(roi, pred, 0)
        gt = np.where(roi, gt, 0)
    names = label_names or [f"label_{k}" for k in range(num_classes)]
    out: dict[str, Any] = {}
    hd, asd = ([math.nan] * (num_classes - 1),) * 2
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


def pooled_binary_metrics(probabilities: list[np.ndarray], truths: list[np.ndarray],
                          rois: list[np.ndarray | None], threshold: float = 0.5) -> dict[str, float]:
    """Pooled-pixel metrics over all cases for a binary task.

    ``probabilities``: foreground probability maps ``(*S)``; ``truths``: ``(*S)`` 0/1; ``rois``: bool or None.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([p[r] if r is not None else p.ravel() for p, r in zip(probabilities, rois, strict=True)])
    target = np.concatenate([(t[r] if r is not None else t.ravel()) > 0 for t, r in zip(truths, rois, strict=True)])
    pred = scores >= threshold
    tp = int(np.sum(pred & target))
    tn = int(np.sum(~pred & ~target))
    fp = int(np.sum(pred & ~target))
    fn = int(np.sum(~pred & target))
    auc = float(roc_auc_score(target, scores)) if 0 < target.sum() < target.size else math.nan
    return {"auc": auc, "f1": 2 * tp / max(1, 2 * tp + fp + fn), "sensitivity": tp / max(1, tp + fn),
            "specificity": tn / max(1, tn + fp), "accuracy": (tp + tn) / max(1, target.size),
            "pixel_error": (fp + fn) / max(1, target.size)}


def summarise(per_case: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean over cases of each class metric (NaN-aware)."""
    summary: dict[str, dict[str, float]] = {}
    for metrics in per_case.values():
        for cls, values in metrics.items():
            for name, value in values.items():
                summary.setdefault(cls, {}).setdefault(name, [])  # type: ignore[arg-type]
                summary[cls][name].append(value)  # type: ignore[union-attr]
    return {cls: {name: float(np.nanmean(v)) if np.any(np.isfinite(v)) else math.nan
                  for name, v in values.items()} for cls, values in summary.items()}
