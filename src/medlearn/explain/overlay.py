"""Heatmap overlays for display: colour-mapped explanation maps blended on grayscale images."""

from __future__ import annotations

import numpy as np

__all__ = ["overlay", "select_slice"]


def _unit(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros_like(img)
    lo, hi = img[finite].min(), img[finite].max()
    out = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.where(finite, out, 0.0)


def overlay(image2d: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap onto an image: ``(1 - alpha) * image + alpha * cmap(heatmap)``.

    Args:
        image2d: ``(H, W)`` grayscale (any range, min-max scaled) or ``(H, W, 3)`` RGB (uint8 or
            any range).
        heatmap: ``(h, w)`` map in [0, 1]; resized bilinearly to ``(H, W)`` if its size differs.
        alpha: heatmap weight in [0, 1].
        cmap: matplotlib colormap name.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    from matplotlib import colormaps

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = np.asarray(image2d)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        rgb = np.repeat(_unit(img)[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        rgb = img[:, :, :3] / 255.0 if img.dtype == np.uint8 else _unit(img[:, :, :3])
    else:
        raise ValueError(f"image2d must be (H, W) or (H, W, 3), got shape {img.shape}")
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2D, got shape {heat.shape}")
    if heat.shape != rgb.shape[:2]:
        import torch
        import torch.nn.functional as F

        t = torch.as_tensor(heat, dtype=torch.float32)[None, None]
        heat = F.interpolate(t, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    colour = colormaps[cmap](np.clip(np.nan_to_num(heat), 0.0, 1.0))[:, :, :3]
    blended = (1.0 - alpha) * rgb + alpha * colour
    return np.clip(np.round(blended * 255.0), 0, 255).astype(np.uint8)


def select_slice(volume: np.ndarray, heatmap: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, int]:
    """For 3D display: the slice along ``axis`` where the heatmap is largest in total.

    Args:
        volume: ``(H, W, D)`` image (a leading channel axis of size 1 is dropped).
        heatmap: ``(H, W, D)`` map.

    Returns:
        ``(image_slice, heat_slice, index)`` with 2D slices.
    """
    vol = np.asarray(volume)
    if vol.ndim == 4 and vol.shape[0] == 1:
        vol = vol[0]
    heat = np.asarray(heatmap)
    if vol.shape != heat.shape or vol.ndim != 3:
        raise ValueError(f"volume {vol.shape} and heatmap {heat.shape} must be the same 3D shape")
    axis = axis % 3
    other = tuple(a for a in range(3) if a != axis)
    index = int(np.argmax(heat.sum(axis=other)))
    return np.take(vol, index, axis=axis), np.take(heat, index, axis=axis), index
