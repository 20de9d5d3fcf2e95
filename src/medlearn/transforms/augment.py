"""Augmentation presets (per-sample MONAI array transforms, channel-first ``(C, *spatial)``).

Levels: ``none``; ``light`` = flips + small affine; ``medium`` = + intensity (contrast, noise);
``heavy`` = + random erasing (Zhong et al. 2020) and, when enabled, elastic deformation (Simard
et al. 2003). MONAI's random transforms sample parameters then apply deterministically, so a
seeded pipeline replays exactly.
"""

from __future__ import annotations

import math
from typing import Any

from monai.transforms import (
    Compose,
    Rand2DElastic,
    Rand3DElastic,
    RandAdjustContrast,
    RandAffine,
    RandCoarseDropout,
    RandFlip,
    RandGaussianNoise,
    Transform,
)


def build_augmentation(cfg: Any, spatial_dims: int, spatial_size: list[int]) -> Transform | None:
    """A MONAI ``Compose`` from an ``AugmentSection``-like config, or None for level ``none``."""
    if cfg.level == "none":
        return None
    ops: list[Transform] = []
    if cfg.flip:
        ops += [RandFlip(prob=0.5, spatial_axis=axis) for axis in range(spatial_dims)][:2]
    if cfg.rotate_degrees or cfg.scale or cfg.translate:
        angle = math.radians(cfg.rotate_degrees)
        rotate = (angle,) if spatial_dims == 2 else (angle, angle, angle)
        shift = [cfg.translate * s for s in spatial_size]
        ops.append(RandAffine(prob=0.7, rotate_range=rotate, scale_range=(cfg.scale,) * spatial_dims,
                              translate_range=shift, padding_mode="border"))
    if cfg.level in ("medium", "heavy"):
        if cfg.contrast:
            ops.append(RandAdjustContrast(prob=0.3, gamma=(1 - cfg.contrast, 1 + cfg.contrast)))
        if cfg.noise_std:
            ops.append(RandGaussianNoise(prob=0.3, std=cfg.noise_std))
    if cfg.level == "heavy":
        if cfg.elastic:
            if spatial_dims == 2:
                ops.append(Rand2DElastic(prob=0.2, spacing=(max(4, spatial_size[0] // 8),) * 2,
                                         magnitude_range=(1, 2), padding_mode="border"))
            else:
                ops.append(Rand3DElastic(prob=0.2, sigma_range=(5, 7), magnitude_range=(50, 100),
                                         padding_mode="border"))
        if cfg.erase_prob:
            hole = [max(1, s // 4) for s in spatial_size]
            ops.append(RandCoarseDropout(holes=1, spatial_size=hole, max_spatial_size=[max(1, s // 2) for s in spatial_size],
                                         prob=cfg.erase_prob, fill_value=0.0))
    return Compose(ops) if ops else None
