"""Batch augmentation in torch, nnU-Net's set (Isensee et al. 2021) at CPU-friendly strength.

Applied to a whole batch at once after it reaches the device, so it costs a few ms against a
training step of ~100 ms. Inputs: image ``(B, C, *S)`` float, label ``(B, *S)`` int64, weight
``(B, *S)`` float (ROI/padding mask). Spatial transforms move all three together (label and weight
with nearest-neighbour sampling); intensity transforms touch only the image.

Levels: ``none``; ``light`` = random flips + 90-degree rotations (square axes);
``default`` = light + affine (rotation, scale; p=0.2 per sample) + brightness/contrast + noise;
``strong`` = default + elastic deformation + random erasing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

LEVELS = ("none", "light", "default", "strong")


def flip_rotate_sample(image: np.ndarray, label: np.ndarray, weight: np.ndarray, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random flips of every spatial axis and a random 90-degree rotation (square first plane) of one sample.

    ``image (C, *S)``, ``label (*S)``, ``weight (*S)``; returns contiguous copies.
    """
    ndim = label.ndim
    axes = [a for a in range(ndim) if rng.random() < 0.5]
    k = int(rng.integers(4)) if label.shape[0] == label.shape[1] else 0
    out = []
    for array, offset in ((image, 1), (label, 0), (weight, 0)):
        if axes:
            array = np.flip(array, tuple(a + offset for a in axes))
        if k:
            array = np.rot90(array, k, (offset, offset + 1))
        out.append(np.ascontiguousarray(array))
    return out[0], out[1], out[2]


def _flip_rot(image: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, gen: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ndim = label.ndim - 1
    for axis in range(ndim):
        flip = torch.rand(label.shape[0], generator=gen) < 0.5
        if flip.any():
            # image[flip] is (n, C, *S), label[flip]/weight[flip] are (n, *S)
            image[flip] = image[flip].flip(axis + 2)
            label[flip] = label[flip].flip(axis + 1)
            weight[flip] = weight[flip].flip(axis + 1)
    if label.shape[1] == label.shape[2]:  # 90-degree rotations in the first plane need a square patch
        k = int(torch.randint(0, 4, (1,), generator=gen))
        if k:
            image = torch.rot90(image, k, (2, 3))
            label = torch.rot90(label, k, (1, 2))
            weight = torch.rot90(weight, k, (1, 2))
    return image.contiguous(), label.contiguous(), weight.contiguous()


def _random_grid(n: int, shape: tuple[int, ...], gen: torch.Generator, rotate: bool, elastic: bool
                 ) -> torch.Tensor:
    """Sampling grids ``(n, *S, ndim)`` for random rotation/scale (+ smooth elastic displacement)."""
    ndim = len(shape)
    theta = torch.zeros(n, ndim, ndim + 1)
    for i in range(n):
        scale = float(torch.empty(1).uniform_(0.85, 1.25, generator=gen))
        if ndim == 2:
            a = float(torch.empty(1).uniform_(-math.pi, math.pi, generator=gen)) if rotate else 0.0
            rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        else:
            a = float(torch.empty(1).uniform_(-math.pi / 6, math.pi / 6, generator=gen)) if rotate else 0.0
            rot = torch.tensor([[1.0, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        theta[i, :, :ndim] = rot / scale
    grid = F.affine_grid(theta, [n, 1, *shape], align_corners=False)
    if elastic:
        coarse = torch.randn(n, ndim, *([5] * ndim), generator=gen) * 0.03
        mode = "bicubic" if ndim == 2 else "trilinear"
        field = F.interpolate(coarse, size=shape, mode=mode, align_corners=False)
        grid = grid + field.movedim(1, -1)
    return grid


def _spatial(image: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, gen: torch.Generator, p: float,
             elastic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    chosen = torch.nonzero(torch.rand(label.shape[0], generator=gen) < p).flatten()
    if len(chosen) == 0:
        return image, label, weight
    grid = _random_grid(len(chosen), tuple(label.shape[1:]), gen, True, elastic).to(image.device)
    # in place: the batch tensors are fresh from the loader (copies would cost more than the warp)
    image[chosen] = F.grid_sample(image[chosen], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    both = torch.stack([label[chosen].float(), weight[chosen]], 1)
    warped = F.grid_sample(both, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    label[chosen] = warped[:, 0].round().long()
    weight[chosen] = warped[:, 1]
    return image, label, weight


def _intensity(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness (p=.15), contrast (p=.15) and Gaussian noise (p=.1) per sample; only chosen samples are touched."""
    b = image.shape[0]
    for p, kind in ((0.15, "brightness"), (0.15, "contrast"), (0.1, "noise")):
        chosen = torch.nonzero(torch.rand(b, generator=gen) < p).flatten()
        if len(chosen) == 0:
            continue
        view = (len(chosen),) + (1,) * (image.ndim - 1)
        x = image[chosen]
        if kind == "brightness":
            x = x * torch.empty(len(chosen)).uniform_(0.75, 1.25, generator=gen).view(view)
        elif kind == "contrast":
            mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
            x = (x - mean) * torch.empty(len(chosen)).uniform_(0.75, 1.25, generator=gen).view(view) + mean
        else:
            sigma = torch.empty(len(chosen)).uniform_(0.0, 0.3, generator=gen).view(view)
            x = x + sigma * torch.randn(x.shape, generator=gen)
        image[chosen] = x
    return image


def _erase(image: torch.Tensor, gen: torch.Generator, p: float = 0.2) -> torch.Tensor:
    spatial = image.shape[2:]
    for i in range(image.shape[0]):
        if float(torch.rand(1, generator=gen)) >= p:
            continue
        box = []
        for n in spatial:
            size = int(torch.randint(max(1, n // 8), max(2, n // 3), (1,), generator=gen))
            start = int(torch.randint(0, max(1, n - size), (1,), generator=gen))
            box.append(slice(start, start + size))
        image[(i, slice(None), *box)] = 0.0
    return image


def augment_batch(image: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, level: str,
                  gen: torch.Generator, flips: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment a batch at ``level`` (see module docstring), partly in place.

    ``flips=False`` skips flips/rotations when the patch sampler already did them
    (:func:`flip_rotate_sample`, free there because the crop is copied anyway).
    """
    if level not in LEVELS:
        raise ValueError(f"augmentation level must be one of {LEVELS}, got {level!r}")
    if level == "none":
        return image, label, weight
    if flips:
        image, label, weight = _flip_rot(image, label, weight, gen)
    if level in ("default", "strong"):
        image, label, weight = _spatial(image, label, weight, gen, p=0.2 if level == "default" else 0.3,
                                        elastic=level == "strong")
        image = _intensity(image, gen)
    if level == "strong":
        image = _erase(image, gen)
    return image, label, weight
