"""Intensity normalisation per modality, fitted on the training split and stored in the plan."""

from __future__ import annotations

import numpy as np

CT_WINDOW = (-1000.0, 1000.0)  # Hounsfield units kept before scaling (air .. dense bone)


def fit_normalization(images: np.ndarray, method: str) -> tuple[float, float]:
    """(mean, std) to apply after the method's fixed mapping, computed on ``images`` (train only)."""
    mapped = map_intensity(images, method)
    return float(mapped.mean()), float(mapped.std() + 1e-8)


def map_intensity(images: np.ndarray, method: str) -> np.ndarray:
    """The fixed part of a method: CT window clipping, or nothing."""
    if method == "ct":
        return np.clip(images, *CT_WINDOW)
    return images


def normalize(images: np.ndarray, method: str, mean: float | None, std: float | None) -> np.ndarray:
    """Apply a fitted normalisation to ``(N, C, *spatial)`` or ``(C, *spatial)`` float arrays.

    ``zscore``/``ct``: ``(map(x) - mean) / std``; ``unit``: ``x / 255``; ``none``: unchanged.
    """
    if method == "none":
        return images.astype(np.float32, copy=False)
    if method == "unit":
        return (images / 255.0).astype(np.float32)
    if mean is None or std is None:
        raise ValueError("normalization statistics missing: fit them on the training split first")
    return ((map_intensity(images, method) - mean) / std).astype(np.float32)
