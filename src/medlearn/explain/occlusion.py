"""Occlusion sensitivity (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014) through MONAI's :class:`monai.visualize.OcclusionSensitivity`.

A patch slides over the image; at each position the image is occluded there and the model's
probability of the explained class is recomputed. The map is the drop in that probability
(clipped at 0), scaled to [0, 1]: high = hiding this region lowers the class score.

Shapes: images ``(N, C, H, W)`` or ``(N, C, H, W, D)``; maps ``(N, H, W)`` or ``(N, H, W, D)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from medlearn.explain._context import as_batch, explaining, target_classes

__all__ = ["occlusion_sensitivity"]


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    # Softmax for several outputs, sigmoid for one. (MONAI's activate=True decides on the number of
    # *input* channels, which picks sigmoid for every grayscale image; hence this callable.)
    return logits.softmax(dim=1) if logits.shape[1] > 1 else logits.sigmoid()


def occlusion_sensitivity(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    class_index: int | None = None,
    mask_size: int | Sequence[int] | None = None,
    overlap: float = 0.5,
    mode: str | float = "mean_img",
    n_batch: int = 32,
    activation: str = "auto",
    normalize: bool = True,
) -> np.ndarray:
    """Occlusion sensitivity maps of ``class_index`` (default: each image's predicted class).

    Args:
        model: ``torch.nn.Module`` returning logits ``(N, K)``.
        images: ``(N, C, H, W)`` or ``(N, C, H, W, D)``.
        class_index: class to explain; None = argmax per image.
        mask_size: occluding patch size (int or one per spatial dim); default a quarter of the
            smallest spatial size (at least 2).
        overlap: overlap of neighbouring patch positions in [0, 1) (MONAI's sliding window).
        mode: what replaces the occluded patch: ``"mean_img"`` (image mean, the grey square of
            Zeiler & Fergus), ``"mean_patch"``, ``"gaussian"`` (multiplicative Gaussian) or a float.
        n_batch: occluded copies per forward pass.
        activation: ``"auto"`` (softmax if K > 1 else sigmoid), ``"softmax"``, ``"sigmoid"`` (use for
            multi-label models) or ``"none"`` (raw logits).
        normalize: scale each map to [0, 1] by its maximum drop; False returns the raw drop in
            probability (negative = occlusion raised the score).

    Returns:
        ``(N, *spatial)`` float32 maps.
    """
    from monai.visualize import OcclusionSensitivity

    activate = {
        "auto": _probabilities,
        "softmax": lambda t: t.softmax(dim=1),
        "sigmoid": torch.sigmoid,
        "none": lambda t: t,
    }.get(activation)
    if activate is None:
        raise ValueError(f"activation must be auto, softmax, sigmoid or none, got {activation!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    with explaining(model), torch.no_grad():
        x = as_batch(images, model)
        spatial = tuple(x.shape[2:])
        if mask_size is None:
            mask_size = max(2, min(spatial) // 4)
        sizes = (mask_size,) * len(spatial) if isinstance(mask_size, int) else tuple(mask_size)
        if len(sizes) != len(spatial) or any(m > s for m, s in zip(sizes, spatial, strict=True)):
            raise ValueError(f"mask_size {sizes} must have one entry per spatial dim and fit in {spatial}")
        classes = target_classes(model, x, class_index)
        base = activate(model(x))
        occ = OcclusionSensitivity(
            nn_module=model, mask_size=sizes, n_batch=n_batch, verbose=False, mode=mode, overlap=overlap,
            activate=activate,
        )  # fmt: skip
        maps = np.zeros((x.shape[0], *spatial), dtype=np.float32)
        for i in range(x.shape[0]):
            with warnings.catch_warnings():  # MONAI 1.6 indexes with lists (a torch deprecation warning)
                warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
                occ_map, _ = occ(x[i : i + 1])  # (1, K, *spatial): class probabilities with each region occluded
            c = int(classes[i])
            drop = (base[i, c] - occ_map[0, c]).float().cpu().numpy()
            if normalize:
                drop = np.clip(drop, 0.0, None)
                top = drop.max()
                drop = drop / top if top > 0 else np.zeros_like(drop)
            maps[i] = drop
    return maps
