"""The optimised affine stage: an affine fitted to one pair by gradient descent, coarse to fine.

Large global motion (rotation, scale, a shift of a tenth of the image) is what a deformable network learns
slowest and instance optimisation of a dense field cannot undo (it only descends locally). So every pair is
first aligned by an affine optimised on that pair alone (the classical first stage, e.g. elastix's and ANTs'
affine before B-spline / SyN, here in torch on the working grid): the affine is parameterised in centred,
normalised coordinates (:func:`~.transforms.centred_affine_to_voxel`: the same parameters at every
resolution, rotations about the image centre), initialised by matching the intensity centroids, and fitted
with Adam on the plan's similarity at ``levels`` (downsampling factors, coarse to fine; blurred images,
:func:`~.nets.image_pyramid`). The network then learns, and predicts, the residual deformation of the
affinely aligned pair (the affine-then-deformable cascade of de Vos et al. 2019, with the affine optimised
rather than learned). Images ``(1, 1, *W)`` tensors; the result is the voxel DDF ``(1, ndim, *W)`` of the affine.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from medlearn.tasks.register.losses import similarity_loss
from medlearn.tasks.register.nets import image_pyramid
from medlearn.tasks.register.transforms import affine_to_ddf, centred_affine_to_voxel, warp

__all__ = ["centroid_translation", "optimise_affine"]


def centroid_translation(fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """The translation ``(ndim,)`` in centred normalised units that puts the moving intensity centroid on the
    fixed one (intensities in [0, 1]; the image spans [-1, 1] per axis)."""
    ndim = fixed.ndim - 2
    out = []
    for axis in range(ndim):
        n = fixed.shape[2 + axis]
        coords = torch.linspace(-1, 1, n, dtype=fixed.dtype).view(*([1] * (2 + axis)), n, *([1] * (ndim - axis - 1)))
        cf = (fixed * coords).sum() / fixed.sum().clamp_min(1e-8)
        cm = (moving * coords).sum() / moving.sum().clamp_min(1e-8)
        out.append(cm - cf)
    return torch.stack(out)


def optimise_affine(fixed: torch.Tensor, moving: torch.Tensor, similarity: str = "ncc",
                    levels: Sequence[int] = (4, 2, 1), steps: int = 100, lr: float = 0.01,
                    **similarity_kwargs: Any) -> torch.Tensor:
    """The voxel DDF ``(1, ndim, *W)`` of the affine that best aligns ``moving`` to ``fixed`` (``(1, 1, *W)``).

    ``similarity``: ``ncc`` (local), ``mse`` or ``mi`` (:func:`~.losses.similarity_loss`); ``steps`` Adam
    steps per level of ``levels``; ``lr`` in normalised units (1 = half the image, or ~57 degrees).
    """
    ndim = fixed.ndim - 2
    shape = tuple(fixed.shape[2:])
    f, m = fixed.detach().float(), moving.detach().float()
    theta = torch.zeros(1, ndim, ndim + 1)
    theta[0, :, :ndim] = torch.eye(ndim)
    theta[0, :, ndim] = centroid_translation(f, m)
    param = torch.nn.Parameter(theta)
    sim = similarity_loss(similarity, ndim, **similarity_kwargs)
    opt = torch.optim.Adam([param], lr=lr)
    factors = [int(x) for x in levels if int(x) >= 1] or [1]
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fl, ml in zip(image_pyramid(f, factors), image_pyramid(m, factors), strict=True):
            level = tuple(fl.shape[2:])
            score = sim.for_fixed(fl)
            for _ in range(int(steps)):
                opt.zero_grad()
                u = affine_to_ddf(centred_affine_to_voxel(param, level), level, fl.dtype)
                loss = score(warp(ml, u))
                loss.backward()
                opt.step()
    with torch.no_grad():
        return affine_to_ddf(centred_affine_to_voxel(param.detach(), shape), shape, f.dtype)
