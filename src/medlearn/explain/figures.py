"""Explanation figures a reader can use: the image and its map side by side with a colour bar, and a
3D map as NIfTI with the input's geometry (a viewer overlays it on the scan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.data.images import ImageMeta, write_image
from medlearn.explain.overlay import overlay, select_slice
from medlearn.io import atomic_path


def _display(image: np.ndarray) -> np.ndarray:
    """``(C, X, Y)`` -> ``(H, W)`` grayscale or ``(H, W, 3)`` RGB for plotting (rows = Y)."""
    if image.shape[0] == 1:
        return image[0].T
    return np.transpose(image[:3], (2, 1, 0))


def save_explanation_figure(path: str | Path, image: np.ndarray, heat: np.ndarray, title: str,
                            method: str = "gradcam") -> Path:
    """PNG: the original image, the map blended on it, and a colour bar (relevance 0..1).

    ``image``: raw ``(C, X, Y[, Z])``; ``heat``: ``(X, Y[, Z])`` in [0, 1]. 3D: the slice along Z where
    the map is largest.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    where = ""
    if heat.ndim == 3:
        vol, heat, z = select_slice(image.mean(0), heat, axis=-1)
        image, where = vol[None], f", slice z={z}"
    shown = _display(image)
    grey = shown if shown.ndim == 2 else shown.mean(-1)
    blended = overlay(grey, heat.T)
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.8), constrained_layout=True)
    axes[0].imshow(shown if shown.ndim == 3 else grey, cmap=None if shown.ndim == 3 else "gray")
    axes[0].set_title("image" + where, fontsize=9)
    axes[1].imshow(blended)
    axes[1].set_title({"gradcam": "Grad-CAM", "occlusion": "occlusion sensitivity"}.get(method, method), fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), ax=axes[1], fraction=0.046, pad=0.04,
                 label="relevance (0 = none, 1 = most)")
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def save_explanation_volume(path: str | Path, heat: np.ndarray, like: ImageMeta | None) -> Path:
    """A 3D map ``(X, Y, Z)`` as NIfTI with the input's geometry (identity when unknown).

    A map at the model's input size (the image was resized) keeps the input's extent: the voxel axes of
    the affine are scaled by the size ratio.
    """
    import dataclasses

    heat = np.asarray(heat, np.float32)
    if like is not None and tuple(like.spatial_shape) != heat.shape:
        ratio = np.asarray(like.spatial_shape, float) / np.asarray(heat.shape, float)
        affine = like.affine.copy()
        affine[:3, :3] = affine[:3, :3] * ratio[None, :]
        like = dataclasses.replace(like, spatial_shape=heat.shape, affine=affine, format="nifti",
                                   spacing=tuple(float(s) * r for s, r in zip(like.spacing, ratio, strict=True)))
    return write_image(path, heat[None], like)
