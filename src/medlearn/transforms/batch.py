"""Batch augmentation in torch for classification: one vectorised call per batch.

Per-sample MONAI array transforms cost ~17 ms per 28x28 image on a busy 2-core CPU (more than the
network step); the same operations on the whole batch via ``affine_grid``/``grid_sample`` cost a
few ms. Input ``(B, C, *S)`` with 2 or 3 spatial dims; every random draw comes from ``gen`` so a
seeded run replays exactly.

Levels (``AugmentSection.level``): ``none``; ``light`` = flips + affine (rotation, scale,
translation); ``medium`` = + contrast (gamma-like) and Gaussian noise; ``heavy`` = + elastic
deformation (when enabled; Simard et al. 2003) and random erasing (Zhong et al. 2020).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.empty(n).uniform_(low, high, generator=gen)


def random_affine_theta(n: int, ndim: int, gen: torch.Generator, rotate_rad: float, scale: float,
                        translate: float) -> torch.Tensor:
    """``(n, ndim, ndim+1)`` affine matrices in normalised coordinates (rotation in the first plane)."""
    angle = _uniform(n, -rotate_rad, rotate_rad, gen)
    zoom = _uniform(n, 1 - scale, 1 + scale, gen)
    theta = torch.zeros(n, ndim, ndim + 1)
    for d in range(ndim):
        theta[:, d, d] = 1.0
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    theta[:, :, :ndim] /= zoom[:, None, None]
    theta[:, :, ndim] = _uniform(n * ndim, -2 * translate, 2 * translate, gen).view(n, ndim)
    return theta


def elastic_offsets(n: int, shape: tuple[int, ...], gen: torch.Generator, magnitude: float = 0.03,
                    control_points: int = 5) -> torch.Tensor:
    """Smooth random displacement ``(n, *shape, ndim)`` in normalised units (coarse noise upsampled)."""
    ndim = len(shape)
    coarse = torch.randn(n, ndim, *([control_points] * ndim), generator=gen) * magnitude
    mode = "bicubic" if ndim == 2 else "trilinear"
    return F.interpolate(coarse, size=shape, mode=mode, align_corners=False).movedim(1, -1)


def random_erase(images: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """Zero one random box (1/8 to 1/3 of each side) in a fraction ``p`` of the images."""
    spatial = images.shape[2:]
    for i in torch.nonzero(torch.rand(images.shape[0], generator=gen) < p).flatten().tolist():
        box = []
        for n in spatial:
            size = int(torch.randint(max(1, n // 8), max(2, n // 3 + 1), (1,), generator=gen))
            start = int(torch.randint(0, max(1, n - size + 1), (1,), generator=gen))
            box.append(slice(start, start + size))
        images[(i, slice(None), *box)] = 0.0
    return images


def augment_images(images: torch.Tensor, cfg: Any, gen: torch.Generator) -> torch.Tensor:
    """Augment a batch of normalised images ``(B, C, *S)`` per an ``AugmentSection``-like ``cfg``."""
    if cfg.level == "none":
        return images
    b, ndim = images.shape[0], images.ndim - 2
    x = images.clone()
    if cfg.flip:
        for axis in range(min(ndim, 2)):
            flip = torch.rand(b, generator=gen) < 0.5
            if flip.any():
                x[flip] = x[flip].flip(axis + 2)
    if cfg.rotate_degrees or cfg.scale or cfg.translate:
        theta = random_affine_theta(b, ndim, gen, math.radians(cfg.rotate_degrees), cfg.scale, cfg.translate)
        # theta maps output to input coordinates in (x, y[, z]) order = reversed tensor axes; fine for
        # isotropic random draws. Keep 30% of the images un-warped to preserve the original statistics.
        keep = torch.rand(b, generator=gen) < 0.3
        theta[keep] = torch.eye(ndim, ndim + 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        if cfg.level == "heavy" and cfg.elastic:
            grid = grid + elastic_offsets(b, tuple(x.shape[2:]), gen).to(x.dtype)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.level in ("medium", "heavy"):
        view = (b,) + (1,) * (x.ndim - 1)
        if cfg.contrast:
            factor = torch.where(torch.rand(b, generator=gen) < 0.5, _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast,
                                                                              gen), torch.ones(b)).view(view)
            mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
            x = (x - mean) * factor + mean
        if cfg.noise_std:
            noisy = (torch.rand(b, generator=gen) < 0.3).float().view(view)
            x = x + noisy * cfg.noise_std * torch.randn(x.shape, generator=gen)
    if cfg.level == "heavy" and cfg.erase_prob:
        x = random_erase(x, gen, cfg.erase_prob)
    return x
