"""Registration metrics per pair, and their means with bootstrap CIs over pairs.

Per pair (:func:`pair_metrics`), everything on the fixed image's grid:

* label overlap of the warped moving labels with the fixed labels, per structure: Dice and the 95th
  percentile Hausdorff distance in mm (MONAI :func:`~monai.metrics.compute_dice`,
  :func:`~monai.metrics.compute_hausdorff_distance`); the pair's ``dice``/``hd95`` are means over the
  structures present in both label maps;
* the field's regularity: ``folding_percent`` (voxels with ``det J <= 0``) and ``std_log_jacobian``
  (Learn2Reg's SDlogJ; Hering et al. 2022, IEEE TMI 42:697);
* target registration error in mm (Fitzpatrick et al. 1998, IEEE TMI 17:694): with corresponding
  landmarks, ``|x_f + u(x_f) - x_m|`` per landmark (``u`` interpolated linearly at ``x_f``); with a
  known true field (synthetic pairs, known transforms), ``|u(x) - u_true(x)|`` over the voxels of a
  mask (default: all) — the distance between where the true and the recovered transforms put each
  point. Distances are in mm via the voxel spacing (an orthonormal direction does not change them);
* image similarity before and after: global NCC and mutual information (32-bin joint histogram,
  nats), inside the mask when given;
* ``seconds`` the registration took, when given.

:func:`registration_metrics` averages each over pairs (NaN where undefined, e.g. HD95 of a structure
missing from a warped map, is skipped) and gives ``{"value", "ci95"}`` entries: the percentile bootstrap
over pairs, all resamples at once from :func:`~medlearn.evaluation.bootstrap.bootstrap_counts` (weighted
means), shaped by :func:`~medlearn.evaluation.bootstrap.ci_entry` (no CI from fewer than 10 pairs).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medlearn.evaluation.bootstrap import bootstrap_counts, ci_entry

__all__ = ["SCALAR_METRICS", "dice_hd95_per_label", "global_ncc", "jacobian_determinant", "mutual_information",
           "pair_metrics", "registration_metrics", "tre_known_field", "tre_landmarks"]

#: the per-pair scalars aggregated (in this order) when present.
SCALAR_METRICS = ("dice", "hd95", "dice_before", "tre_mm", "tre_mm_before", "folding_percent", "std_log_jacobian",
                  "ncc_before", "ncc_after", "mi_before", "mi_after", "seconds")


def _spatial(a: np.ndarray | torch.Tensor, ndim: int) -> np.ndarray:
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    while arr.ndim > ndim:
        if arr.shape[0] != 1:
            raise ValueError(f"expected a single-channel image, got shape {arr.shape}")
        arr = arr[0]
    return arr


def jacobian_determinant(ddf: np.ndarray) -> np.ndarray:
    """``det(I + du/dx)`` ``(*S)`` of a voxel DDF ``(ndim, *S)`` (2D or 3D), central differences inside and
    one-sided at the border (``numpy.gradient``); spacing-independent (``J_mm = D J D^-1``). The identity
    gives 1; ``<= 0`` marks folding."""
    u = np.asarray(ddf, np.float64)
    ndim = u.shape[0]
    if ndim not in (2, 3) or u.ndim != ndim + 1:
        raise ValueError(f"ddf must be (ndim, *S) with ndim 2 or 3, got {u.shape}")
    j = np.empty((ndim, ndim, *u.shape[1:]))
    for i in range(ndim):
        grads = np.gradient(u[i], axis=tuple(range(ndim)))
        for k in range(ndim):
            j[i, k] = grads[k] + (1.0 if i == k else 0.0)
    return np.linalg.det(np.moveaxis(j, (0, 1), (-2, -1)))


def folding_percent(det: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Percentage of voxels whose Jacobian determinant ``det (*S)`` is ``<= 0`` (the mapping folds there);
    ``mask (*S)`` restricts it (0 for an empty mask)."""
    fold = np.asarray(det) <= 0
    if mask is None:
        return float(100.0 * fold.mean())
    m = np.asarray(mask, bool).reshape(fold.shape)
    return float(100.0 * fold[m].sum() / max(int(m.sum()), 1))


def log_jacobian_std(det: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Standard deviation (ddof 1) of ``log det J`` over ``det (*S)`` clipped to ``[1e-9, 1e9]``, inside
    ``mask`` if given (the Learn2Reg "SDlogJ" smoothness measure; Hering et al. 2022, IEEE TMI 42:697)."""
    logj = np.log(np.clip(np.asarray(det, np.float64), 1e-9, 1e9))
    values = logj[np.asarray(mask, bool).reshape(logj.shape)] if mask is not None else logj
    return float(np.std(values, ddof=1))


def global_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of the intensities of ``a`` and ``b`` (same shape), inside ``mask``."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if mask is not None:
        x, y = x[mask], y[mask]
    x, y = x.ravel() - x.mean(), y.ravel() - y.mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else math.nan


def mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 32, mask: np.ndarray | None = None) -> float:
    """Mutual information (nats) of the joint intensity histogram of ``a`` and ``b`` with ``bins`` bins."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if mask is not None:
        x, y = x[mask], y[mask]
    joint, _, _ = np.histogram2d(x.ravel(), y.ravel(), bins=bins)
    p = joint / max(joint.sum(), 1.0)
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def dice_hd95_per_label(warped_label: np.ndarray, fixed_label: np.ndarray, label_ids: Sequence[int],
                        spacing: Sequence[float] | None = None, hd95: bool = True) -> dict[int, dict[str, float]]:
    """``{id: {"dice", "hd95"}}`` for each structure id (MONAI metrics; HD95 in mm, NaN when either map
    lacks the structure; Dice of two empty maps is NaN, not counted)."""
    from monai.metrics import compute_dice, compute_hausdorff_distance

    ids = [int(i) for i in label_ids]
    if not ids:
        return {}
    w = np.asarray(warped_label)
    f = np.asarray(fixed_label)
    pred = torch.from_numpy(np.stack([w == i for i in ids])[None].astype(np.float32))
    gt = torch.from_numpy(np.stack([f == i for i in ids])[None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = compute_dice(pred, gt, include_background=True, ignore_empty=True)[0].tolist()
        if hd95:
            hd = compute_hausdorff_distance(pred, gt, include_background=True, percentile=95,
                                            spacing=[float(s) for s in (spacing or [1.0] * w.ndim)])[0].tolist()
        else:
            hd = [math.nan] * len(ids)
    out = {}
    for k, i in enumerate(ids):
        present_w, present_f = bool(pred[0, k].any()), bool(gt[0, k].any())
        out[i] = {"dice": float(dice[k]) if present_f or present_w else math.nan,
                  "hd95": float(hd[k]) if present_f and present_w and math.isfinite(hd[k]) else math.nan}
    return out


def _interp(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``field (ndim, *S)`` linearly interpolated at ``points (N, ndim)`` voxel coordinates -> ``(N, ndim)``."""
    from scipy import ndimage

    coords = np.asarray(points, float).T
    return np.stack([ndimage.map_coordinates(field[i].astype(np.float64), coords, order=1, mode="nearest")
                     for i in range(field.shape[0])], 1)


def tre_landmarks(ddf: np.ndarray, fixed_points: np.ndarray, moving_points: np.ndarray,
                  spacing: Sequence[float] | None = None) -> np.ndarray:
    """Per-landmark TRE in mm: ``|(x_f + u(x_f) - x_m) * spacing|``; points ``(N, ndim)`` voxel coordinates
    on the fixed grid, ``ddf (ndim, *S)`` voxels."""
    fp, mp = np.asarray(fixed_points, float), np.asarray(moving_points, float)
    sp = np.asarray(spacing if spacing is not None else [1.0] * fp.shape[1], float)
    mapped = fp + _interp(np.asarray(ddf), fp)
    return np.linalg.norm((mapped - mp) * sp, axis=1)


def tre_known_field(ddf: np.ndarray, true_ddf: np.ndarray, spacing: Sequence[float] | None = None,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Per-voxel distance in mm between where the recovered and the true field map each fixed voxel,
    ``|(u - u_true) * spacing|``, over ``mask`` (default all voxels)."""
    d = np.asarray(ddf, np.float64) - np.asarray(true_ddf, np.float64)
    sp = np.asarray(spacing if spacing is not None else [1.0] * d.shape[0], float).reshape(-1, *([1] * (d.ndim - 1)))
    dist = np.sqrt(((d * sp) ** 2).sum(0))
    return dist[mask] if mask is not None else dist.ravel()


def pair_metrics(fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray, ddf: np.ndarray | torch.Tensor, *,
                 fixed_label: np.ndarray | None = None, warped_label: np.ndarray | None = None,
                 moving_label: np.ndarray | None = None, label_ids: Sequence[int] | None = None,
                 spacing: Sequence[float] | None = None, fixed_points: np.ndarray | None = None,
                 moving_points: np.ndarray | None = None, true_ddf: np.ndarray | None = None,
                 mask: np.ndarray | None = None, seconds: float | None = None, hd95: bool = True) -> dict[str, Any]:
    """All metrics of one registered pair (see the module docstring).

    Images ``(*S)`` or ``(1, *S)`` on the fixed grid (``moving`` before, ``warped`` after registration);
    ``ddf (ndim, *S)`` or ``(1, ndim, *S)`` voxels; labels ``(*S)`` or ``(1, *S)`` ints (``moving_label``
    adds ``dice_before``); ``label_ids`` default: the foreground ids present in both ``fixed_label`` and
    the moving labels; points ``(N, ndim)`` voxel coordinates; ``true_ddf (ndim, *S)``; ``mask (*S)`` bool.
    Returns floats (NaN = not defined here) and ``per_label: {id: {"dice", "hd95"}}``.
    """
    u = ddf.detach().cpu().numpy() if isinstance(ddf, torch.Tensor) else np.asarray(ddf)
    if u.ndim >= 2 and u.shape[0] == 1 and u.shape[1] == u.ndim - 2:
        u = u[0]
    ndim = u.shape[0]
    f, m, w = (_spatial(x, ndim) for x in (fixed, moving, warped))
    msk = _spatial(mask, ndim).astype(bool) if mask is not None else None
    out: dict[str, Any] = {}
    det = jacobian_determinant(u)
    out["folding_percent"], out["std_log_jacobian"] = folding_percent(det), log_jacobian_std(det)
    out["ncc_before"], out["ncc_after"] = global_ncc(m, f, msk), global_ncc(w, f, msk)
    out["mi_before"], out["mi_after"] = mutual_information(m, f, mask=msk), mutual_information(w, f, mask=msk)
    if fixed_label is not None and warped_label is not None:
        fl, wl = _spatial(fixed_label, ndim), _spatial(warped_label, ndim)
        ml = _spatial(moving_label, ndim) if moving_label is not None else None
        if label_ids is None:
            ids = set(np.unique(fl).tolist()) & set(np.unique(ml if ml is not None else wl).tolist())
            label_ids = sorted(int(i) for i in ids if i != 0)
        per = dice_hd95_per_label(wl, fl, label_ids, spacing, hd95)
        out["per_label"] = per
        out["dice"] = _nanmean([v["dice"] for v in per.values()])
        out["hd95"] = _nanmean([v["hd95"] for v in per.values()]) if hd95 else math.nan
        if ml is not None:
            before = dice_hd95_per_label(ml, fl, label_ids, spacing, hd95=False)
            out["dice_before"] = _nanmean([v["dice"] for v in before.values()])
    if fixed_points is not None and moving_points is not None:
        out["tre_mm"] = float(np.mean(tre_landmarks(u, fixed_points, moving_points, spacing)))
        out["tre_mm_before"] = float(np.mean(tre_landmarks(np.zeros_like(u), fixed_points, moving_points, spacing)))
    elif true_ddf is not None:
        out["tre_mm"] = float(np.mean(tre_known_field(u, true_ddf, spacing, msk)))
        out["tre_mm_before"] = float(np.mean(tre_known_field(np.zeros_like(u), true_ddf, spacing, msk)))
    if seconds is not None:
        out["seconds"] = float(seconds)
    return out


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray([v for v in values if v is not None], float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _weighted_nanmean(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of ``values (N,)`` under each resample's multiplicities ``counts (B, N)``, NaNs skipped."""
    ok = np.isfinite(values)
    w = counts[:, ok]
    total = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, w @ values[ok] / np.where(total > 0, total, 1), np.nan)


def _entry(values: Sequence[float], counts: np.ndarray | None, alpha: float) -> dict[str, Any]:
    vals = np.asarray(values, float)
    finite = vals[np.isfinite(vals)]
    value = float(finite.mean()) if finite.size else None
    resampled = _weighted_nanmean(vals, counts) if counts is not None else None
    entry = ci_entry(value, resampled, int(finite.size), alpha, undefined="no pair defines it")
    entry["n"] = int(finite.size)
    return entry


def registration_metrics(per_pair: Sequence[dict[str, Any]], n_boot: int = 1000, seed: int = 0,
                         alpha: float = 0.05) -> dict[str, Any]:
    """Means over pairs with percentile-bootstrap CIs (pairs resampled with replacement).

    ``per_pair``: :func:`pair_metrics` outputs. Returns ``{"n", <metric>: {"value", "ci95", "n"}, ...,
    "per_label": {id: {"dice": {...}, "hd95": {...}}}, "bootstrap": {...}}``; a metric no pair has is
    left out, one defined on too few pairs gets ``ci95`` None with ``ci_note``.
    """
    n = len(per_pair)
    counts = bootstrap_counts(n, n_boot, seed) if n_boot > 0 and n > 0 else None
    result: dict[str, Any] = {"n": n}
    for name in SCALAR_METRICS:
        if any(name in p for p in per_pair):
            result[name] = _entry([p.get(name, math.nan) for p in per_pair], counts, alpha)
    ids = sorted({int(i) for p in per_pair for i in (p.get("per_label") or {})})
    if ids:
        result["per_label"] = {
            str(i): {key: _entry([(p.get("per_label") or {}).get(i, {}).get(key, math.nan) for p in per_pair],
                                 counts, alpha) for key in ("dice", "hd95")}
            for i in ids}
    result["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "method": "percentile", "unit": "pair"}
    return result
