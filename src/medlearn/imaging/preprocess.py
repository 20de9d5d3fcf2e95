"""Image preprocessing shared by training and prediction: channel selection, resampling, normalisation.

Arrays are channel-first ``(C, *spatial)`` (spatial = X, Y[, Z] as read by
:func:`medlearn.data.images.read_image`). Labels and ROI masks are ``(*spatial)`` uint8. What to do is a
plan section, :class:`PreprocessingSection`, that any image task's plan can hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medlearn.plan import setting


@dataclass
class PreprocessingSection:
    """How an image becomes the network's input (identical in training and prediction)."""

    input_channels: list[int] = setting(factory=list, help="input channels used, in order")
    normalization: list[str] = setting(factory=list, help="per channel: zscore | clahe | ct | none")
    ct_stats: list[list[float]] = setting(factory=list, help="per channel: [lo, hi, mean, std] (ct only)")
    target_spacing: list[float] = setting(factory=list, help="resample to this spacing (mm); empty: keep")
    zero_outside_roi: bool = setting(True, help="set voxels outside the ROI mask to 0")


@dataclass
class PreprocessedCase:
    """A case on the network's grid. ``original_shape`` lets predictions be resampled back."""

    name: str
    image: np.ndarray  # (C, *spatial) float32, normalised
    label: np.ndarray | None  # (*spatial) uint8
    roi: np.ndarray | None  # (*spatial) bool
    original_shape: tuple[int, ...]


def _needs_resampling(spacing: tuple[float, ...], target: list[float]) -> bool:
    if not target or len(target) != len(spacing):
        return False
    return any(abs(s - t) / t > 0.01 for s, t in zip(spacing, target, strict=True))


def resample(array: np.ndarray, shape: tuple[int, ...], mode: str) -> np.ndarray:
    """Resample ``(C, *spatial)`` to ``shape`` with torch (``mode`` 'linear' or 'nearest')."""
    ndim = len(shape)
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    interp = {"linear": "bilinear" if ndim == 2 else "trilinear", "nearest": "nearest"}[mode]
    kwargs = {"align_corners": False} if mode == "linear" else {}
    return F.interpolate(t, size=shape, mode=interp, **kwargs)[0].numpy()


def local_contrast(channel: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of one 2D channel ``(X, Y)`` -> ``[0, 1]``.

    CLAHE (Zuiderveld 1994) evens out the uneven illumination of colour photographs (fundus,
    dermoscopy) so that intensities mean the same thing across images; intensities are first scaled
    to ``[0, 1]`` by the 0.5/99.5 percentiles inside ``region`` (the field of view, when known).
    """
    from skimage.exposure import equalize_adapthist

    values = channel[region] if region is not None else channel
    lo, hi = np.percentile(values, [0.5, 99.5])
    scaled = np.clip((channel - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    return equalize_adapthist(scaled).astype(np.float32)


def normalise(image: np.ndarray, roi: np.ndarray | None, pre: PreprocessingSection) -> np.ndarray:
    """Per-channel normalisation from the plan; returns float32 ``(C, *spatial)``."""
    out = np.empty(image.shape, np.float32)
    region = roi if roi is not None and roi.any() else None
    for c, scheme in enumerate(pre.normalization):
        x = image[c].astype(np.float32)
        if scheme == "ct":
            lo, hi, mean, std = pre.ct_stats[c]
            x = (np.clip(x, lo, hi) - mean) / max(std, 1e-6)
        elif scheme in ("zscore", "clahe"):
            if scheme == "clahe":
                x = local_contrast(x, region)
            values = x[region] if region is not None else x
            x = (x - values.mean()) / max(float(values.std()), 1e-6)
        out[c] = x
    if region is not None and pre.zero_outside_roi:
        out[:, ~region] = 0.0
    return out


def preprocess_case(name: str, image: np.ndarray, spacing: tuple[float, ...], pre: PreprocessingSection,
                    label: np.ndarray | None = None, roi: np.ndarray | None = None) -> PreprocessedCase:
    """Select channels, resample to the plan's spacing, normalise. ``image`` is ``(C, *spatial)``."""
    image = image[pre.input_channels]
    original = tuple(image.shape[1:])
    target = pre.target_spacing
    if _needs_resampling(spacing, target):
        shape = tuple(max(1, round(n * s / t)) for n, s, t in zip(original, spacing, target, strict=True))
        image = resample(image, shape, "linear")
        if label is not None:
            label = resample(label[None].astype(np.float32), shape, "nearest")[0]
        if roi is not None:
            roi = resample(roi[None].astype(np.float32), shape, "nearest")[0]
    roi_bool = roi > 0 if roi is not None else None
    norm = normalise(image, roi_bool, pre)
    lab = label.astype(np.uint8) if label is not None else None
    return PreprocessedCase(name, norm, lab, roi_bool, original)


def restore_probabilities(probs: np.ndarray, original_shape: tuple[int, ...]) -> np.ndarray:
    """Resample ``(K, *spatial)`` probabilities back to the input grid (no-op when shapes match)."""
    if tuple(probs.shape[1:]) == tuple(original_shape):
        return probs
    return resample(probs, tuple(original_shape), "linear")
