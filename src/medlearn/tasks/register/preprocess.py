"""Bring a pair to the network's grid: intensity normalisation, resampling to the working shape, labels.

Every pair lives on its fixed image's grid ``S`` (:func:`~.data.load_pair` resampled the moving side);
the network runs on the plan's ``data.working_shape`` ``W``. Resampling keeps the corner voxels in place
(``align_corners=True`` geometry, the one :func:`~.transforms.resize_field` assumes for the field on its
way back), averaging boxes of the downsampling factor first so fine structures do not alias. Label maps
are resampled by nearest neighbour on the same geometry and
remapped to consecutive classes ``0..K`` (structure id ``label_ids[k]`` -> ``k + 1``; others -> 0). With the
plan's affine stage (``prealign.method=affine``) the moving side is then aligned by an affine optimised on
the pair (:mod:`.affine`): the network learns the rest.
Arrays are ``(1, *S)`` float32 images / integer labels, as :class:`~.data.RegistrationPair` holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medlearn.nets.sampling import grid_sample

__all__ = ["normalise", "prealign_field", "remap_labels", "resample_image", "resample_labels", "working_pair"]


def normalise(image: np.ndarray, scheme: str = "percentile") -> np.ndarray:
    """``(C, *S)`` intensities -> ``(1, *S)`` float32: ``percentile`` clips to the 0.5/99.5 percentiles and
    scales to [0, 1], ``minmax`` scales min..max to [0, 1], ``none`` keeps them (channels are averaged)."""
    x = np.asarray(image, np.float32)
    x = x.mean(0, keepdims=True) if x.shape[0] > 1 else x
    if scheme == "none":
        return x
    # percentiles of at most ~1M voxels (a regular subsample: a 1 mm brain has 7M; the same values to ~0.1%)
    sample = x.ravel()[:: max(1, x.size // 1_000_000)]
    lo, hi = (np.percentile(sample, (0.5, 99.5)) if scheme == "percentile" else (x.min(), x.max()))
    if hi <= lo:
        return np.zeros_like(x)
    return ((np.clip(x, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def _grid(shape_in: Sequence[int], shape_out: Sequence[int]) -> torch.Tensor:
    """The ``grid_sample`` grid (``align_corners=True``) putting output voxel ``i`` at input ``i (n-1)/(w-1)``."""
    axes = [torch.linspace(-1, 1, int(w)) for w in shape_out]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], -1)[None]  # grid_sample wants (x, y[, z]) = the last tensor axis first


def resample_image(image: np.ndarray | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``(1, *S)`` float image -> ``(1, *W)`` float32 tensor, linear on the ``align_corners`` geometry.

    Downsampling by ``k >= 2`` voxels per working voxel first averages ``k``-voxel boxes (an anti-aliasing
    box filter, ~30x cheaper than a Gaussian on a 1 mm brain), then samples the averaged image where each
    working voxel lies (box ``j`` is centred at ``j k + (k - 1) / 2``), so the geometry stays exact.
    """
    x = torch.as_tensor(np.asarray(image, np.float32) if not isinstance(image, torch.Tensor) else image).float()
    spatial = tuple(x.shape[1:])
    shape = tuple(int(s) for s in shape)
    if spatial == shape:
        return x
    ndim = len(spatial)
    factors = [max(1, int((n - 1) / max(w - 1, 1) + 0.5)) for n, w in zip(spatial, shape, strict=True)]
    pooled = x[None]
    if max(factors) > 1:
        pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
        pooled = pool(pooled, kernel_size=factors, stride=factors)
    axes = []
    for n, w, k, m in zip(spatial, shape, factors, pooled.shape[2:], strict=True):
        pos = torch.linspace(0, n - 1, w)  # full-resolution index of each working voxel
        pooled_index = (pos - (k - 1) / 2) / k
        axes.append(2 * pooled_index / max(m - 1, 1) - 1)
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], -1)[None]
    return grid_sample(pooled, grid, padding="border")[0]


def resample_labels(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``(1, *S)`` integer labels -> ``(1, *W)`` by nearest neighbour on the ``align_corners`` geometry."""
    lab = np.asarray(labels)
    spatial = tuple(lab.shape[1:])
    if spatial == tuple(shape):
        return lab
    t = torch.as_tensor(lab.astype(np.float32))[None]
    out = grid_sample(t, _grid(spatial, shape), mode="nearest")[0]
    return out.round().numpy().astype(lab.dtype)


def remap_labels(labels: np.ndarray, label_ids: Sequence[int]) -> np.ndarray:
    """Structure ids -> consecutive classes: ``label_ids[k]`` becomes ``k + 1``, anything else 0 (int64)."""
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, np.int64)
    for k, i in enumerate(label_ids):
        out[lab == int(i)] = k + 1
    return out


def working_pair(pair: Any, plan: Any) -> dict[str, np.ndarray]:
    """A :class:`~.data.RegistrationPair` on the plan's working grid: ``fixed``/``moving`` ``(1, *W)``
    float32 in [0, 1] and, when the plan trains with labels, ``fixed_label``/``moving_label`` ``(1, *W)``
    int16 classes (:func:`remap_labels`)."""
    shape = plan.data.working_shape
    scheme = plan.data.normalization
    out = {"fixed": resample_image(normalise(pair.fixed, scheme), shape).numpy(),
           "moving": resample_image(normalise(pair.moving, scheme), shape).numpy()}
    if plan.num_labels and pair.fixed_label is not None and pair.moving_label is not None:
        for key in ("fixed_label", "moving_label"):
            small = resample_labels(getattr(pair, key), shape)
            out[key] = remap_labels(small, plan.data.label_ids).astype(np.int16)
    if plan.prealigned:  # the network learns what is left after the optimised affine stage
        from medlearn.tasks.register.transforms import warp, warp_labels

        u = prealign_field(plan, torch.as_tensor(out["fixed"])[None], torch.as_tensor(out["moving"])[None])
        out["moving"] = warp(torch.as_tensor(out["moving"])[None], u)[0].numpy()
        if "moving_label" in out:
            lab = torch.as_tensor(out["moving_label"].astype(np.int64))[None]
            out["moving_label"] = warp_labels(lab, u)[0].numpy().astype(np.int16)
    return out


def prealign_field(plan: Any, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """The optimised affine stage (:func:`~.affine.optimise_affine`) of the plan on working-grid images
    ``(1, 1, *W)`` -> its DDF ``(1, ndim, *W)``."""
    from medlearn.tasks.register.affine import optimise_affine

    loss, pre = plan.loss, plan.prealign
    kwargs = {"kernel_size": loss.ncc_kernel} if loss.similarity == "ncc" else (
        {"num_bins": loss.mi_bins} if loss.similarity == "mi" else {})
    return optimise_affine(fixed, moving, loss.similarity, pre.levels, pre.steps, pre.lr, **kwargs)
