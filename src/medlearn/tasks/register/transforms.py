"""Spatial transformer pieces: warping, affine <-> displacement, B-splines, composition, Jacobians.

One convention everywhere (the networks, :mod:`.classical`, :mod:`.synthetic`, the metrics):

* images are ``(B, C, *S)`` tensors (``BCHW`` in 2D, ``BCHWD`` in 3D) with ``S = (X, Y[, Z])`` the
  package's NIfTI voxel order (:mod:`medlearn.data.images`);
* a dense displacement field (DDF) ``u`` is ``(B, ndim, *S)`` on the *fixed* image's voxel grid, in
  voxels, channel ``i`` along array axis ``i``, and it *pulls*: the moving image warped onto the fixed
  grid is ``warped(x) = moving(x + u(x))`` (MONAI's :class:`~monai.networks.blocks.Warp`, ITK's
  ``DisplacementFieldTransform`` and the Spatial Transformer of Jaderberg et al. 2015 use the same
  direction). ``x + u(x)`` is where the fixed voxel ``x`` lies in the moving image;
* an affine is a homogeneous ``(ndim + 1, ndim + 1)`` (or ``(B, ndim, ndim + 1)``) matrix ``M`` acting on
  voxel indices, ``x + u(x) = M @ [x, 1]``.

Taken from MONAI: :class:`~monai.networks.blocks.DVF2DDF` (scaling and squaring) and the arithmetic of its
:class:`~monai.networks.blocks.Warp` (grid_sample with ``align_corners=True``; :func:`warp` keeps the grid
between calls). Written here: affine <-> field, cubic
B-spline upsampling, composition, inversion and field resizing (the Jacobian determinant and folding statistics
are metrics: :mod:`medlearn.evaluation.registration`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medlearn.nets.sampling import grid_sample

__all__ = [
    "affine_to_ddf", "bspline_grid_shape", "bspline_to_ddf", "centred_affine_to_voxel", "compose_fields",
    "ddf_to_affine", "identity_grid", "integrate_velocity", "invert_field",
    "resize_field", "warp", "warp_labels",
]

#: the last few identity sampling grids, by (shape, dtype, device): the working, finer and fixed grids alternate
_GRIDS: dict[tuple[tuple[int, ...], torch.dtype, torch.device], torch.Tensor] = {}
_GRIDS_KEPT = 4


def _sampling_grid(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(1, *S, ndim)`` grid_sample coordinates of the voxels themselves (``align_corners``: -1 at the first
    voxel, 1 at the last; last axis in grid_sample's reversed order)."""
    key = (tuple(int(n) for n in shape), dtype, device)
    if key not in _GRIDS:
        if len(_GRIDS) >= _GRIDS_KEPT:
            _GRIDS.pop(next(iter(_GRIDS)))
        axes = [torch.linspace(-1, 1, n, dtype=dtype, device=device) for n in key[0]]  # n = 1: [-1]
        _GRIDS[key] = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], -1)[None]
    return _GRIDS[key]


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear", padding: str = "border") -> torch.Tensor:
    """``image (B, C, *S)`` warped by ``ddf (B, ndim, *S)``: ``out(x) = image(x + ddf(x))``.

    MONAI's :class:`~monai.networks.blocks.Warp` arithmetic (``grid_sample`` with ``align_corners=True`` at
    ``x + u(x)``; ``mode`` ``"bilinear"`` is trilinear in 3D, or ``"nearest"``; ``padding`` ``"border"``,
    ``"zeros"`` or ``"reflection"``), written out because MONAI rebuilds and rescales the whole voxel grid
    on every call: here the identity grid is kept per shape and the field is scaled once, ~1.7x less CPU for
    a 3D warp and its backward (76 vs 130 ms at 79x95x111) -- the step instance optimisation repeats.
    """
    ndim = ddf.shape[1]
    shape = tuple(ddf.shape[2:])
    if ddf.shape[0] != image.shape[0] and ddf.shape[0] == 1:
        ddf = ddf.expand(image.shape[0], *ddf.shape[1:])
    if len(shape) != ndim or tuple(image.shape[2:]) != shape or ndim not in (2, 3):
        raise ValueError(f"image {tuple(image.shape)} and ddf {tuple(ddf.shape)}: expected (B, C, *S) and "
                         "(B, ndim, *S) with ndim 2 or 3")
    identity = _sampling_grid(shape, ddf.dtype, ddf.device)
    scale = [2.0 / max(n - 1, 1) for n in reversed(shape)]
    if torch.is_grad_enabled() and ddf.requires_grad:
        grid = identity + ddf.flip(1).movedim(1, -1) * torch.tensor(scale, dtype=ddf.dtype, device=ddf.device)
    else:  # one fused pass per component into the grid (a 1 mm brain: ~60 vs ~140 ms)
        grid = torch.empty((ddf.shape[0], *shape, ndim), dtype=ddf.dtype, device=ddf.device)
        for j in range(ndim):
            torch.add(identity[..., j], ddf[:, ndim - 1 - j], alpha=scale[j], out=grid[..., j])
    # a 3D volume on every CPU thread (torch's 3D kernel splits a batch only)
    return grid_sample(image.to(ddf.dtype), grid, mode=mode, padding=padding)


def warp_labels(labels: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """Integer label map ``(B, 1, *S)`` warped with nearest-neighbour interpolation (zeros outside)."""
    out = warp(labels.to(ddf.dtype), ddf, mode="nearest", padding="zeros")
    return out.round().to(labels.dtype if not torch.is_floating_point(labels) else torch.int64)


def identity_grid(shape: Sequence[int], dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Voxel index coordinates ``(ndim, *S)``: channel ``i`` holds the index along axis ``i``."""
    axes = [torch.arange(n, dtype=dtype, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), 0)


def _as_batched_matrix(matrix: torch.Tensor | np.ndarray, ndim: int) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(matrix) if isinstance(matrix, np.ndarray) else matrix)
    if m.ndim == 2:
        m = m[None]
    if m.shape[-2] == ndim + 1:
        m = m[:, :ndim]
    if m.shape[-2:] != (ndim, ndim + 1):
        raise ValueError(f"an affine for {ndim}D must be ({ndim + 1}, {ndim + 1}) or (B, {ndim}, {ndim + 1}), "
                         f"got {tuple(m.shape)}")
    return m


def affine_to_ddf(matrix: torch.Tensor | np.ndarray, shape: Sequence[int],
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The DDF ``(B, ndim, *S)`` of an affine in voxel indices: ``u(x) = M @ [x, 1] - x``.

    ``matrix``: ``(ndim + 1, ndim + 1)`` homogeneous or ``(B, ndim, ndim + 1)``.
    """
    ndim = len(shape)
    m = _as_batched_matrix(matrix, ndim).to(dtype)
    grid = identity_grid(shape, dtype, m.device)  # (ndim, *S)
    flat = grid.reshape(ndim, -1)
    mapped = torch.einsum("bij,jn->bin", m[:, :, :ndim], flat) + m[:, :, ndim:]
    return (mapped - flat).reshape(m.shape[0], ndim, *shape)


def ddf_to_affine(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares affine ``(B, ndim + 1, ndim + 1)`` (voxel indices) closest to ``ddf (B, ndim, *S)``.

    Exact for a field made by :func:`affine_to_ddf`; for a deformable field it is its affine part.
    ``mask (B, 1, *S)`` restricts the fit to voxels where it is true.
    """
    b, ndim = ddf.shape[:2]
    shape = ddf.shape[2:]
    grid = identity_grid(shape, torch.float64, ddf.device).reshape(ndim, -1).T  # (N, ndim)
    design = torch.cat([grid, torch.ones_like(grid[:, :1])], 1)  # (N, ndim + 1)
    out = torch.eye(ndim + 1, dtype=torch.float64).repeat(b, 1, 1)
    for k in range(b):
        target = (ddf[k].reshape(ndim, -1).T.double() + grid)  # (N, ndim)
        a, t = design, target
        if mask is not None:
            keep = mask[k].reshape(-1).bool()
            a, t = a[keep], t[keep]
        sol = torch.linalg.lstsq(a, t).solution  # (ndim + 1, ndim)
        out[k, :ndim] = sol.T
    return out.to(ddf.dtype)


def centred_affine_to_voxel(theta: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Convert affines in centred, normalised coordinates to voxel-index matrices ``(B, ndim, ndim + 1)``.

    ``theta (B, ndim, ndim + 1)`` acts on ``x_n = (x - c) / h`` with ``c = h = (n - 1) / 2`` per axis
    (the image spans [-1, 1], as ``grid_sample(align_corners=True)``), so the identity is ``[I | 0]``,
    a rotation turns about the image centre and a translation of 1 is half the image. Networks regress
    these: every parameter then moves the image by a similar amount whatever its size.
    """
    ndim = len(shape)
    h = torch.tensor([(n - 1) / 2 for n in shape], dtype=theta.dtype, device=theta.device).clamp_min(0.5)
    a, b = theta[:, :, :ndim], theta[:, :, ndim]
    lin = a * h[None, :, None] / h[None, None, :]  # H A H^-1
    trans = h + b * h - torch.einsum("bij,j->bi", lin, h)
    return torch.cat([lin, trans[..., None]], 2)


# -- cubic B-splines (Rueckert et al. 1999, IEEE TMI 18:712; de Vos et al. 2019, MedIA 52:128) -------------
def _cubic_bspline(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t**2 + t**3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def bspline_grid_shape(shape: Sequence[int], spacing: int | Sequence[int]) -> tuple[int, ...]:
    """Control points per axis for an image of ``shape`` and a control-point ``spacing`` (voxels).

    Control point ``k`` sits at voxel ``(k - 1) * spacing``: one point before the first voxel and enough
    after the last that every voxel has its 4 (per axis) supporting points.
    """
    sp = [int(spacing)] * len(shape) if isinstance(spacing, int) else [int(s) for s in spacing]
    return tuple(math.ceil((n - 1) / s) + 3 for n, s in zip(shape, sp, strict=True))


def bspline_to_ddf(control: torch.Tensor, shape: Sequence[int], spacing: int | Sequence[int]) -> torch.Tensor:
    """Dense field ``(B, ndim, *S)`` from cubic B-spline control-point displacements ``(B, ndim, *G)``.

    ``u(x) = sum_k c_k prod_i beta3((x_i - p_ki) / s_i)`` (free-form deformation, Rueckert et al. 1999),
    evaluated exactly at every voxel as one transposed convolution per axis (stride = spacing, kernel =
    the sampled cubic B-spline), as in the B-spline output layer of de Vos et al. 2019. ``G`` must be
    :func:`bspline_grid_shape` ``(shape, spacing)``; constant control values give that constant field.
    """
    ndim = len(shape)
    sp = [int(spacing)] * ndim if isinstance(spacing, int) else [int(s) for s in spacing]
    expected = bspline_grid_shape(shape, sp)
    if tuple(control.shape[2:]) != expected:
        raise ValueError(f"control grid {tuple(control.shape[2:])} does not match {expected} for image {tuple(shape)}"
                         f" and spacing {sp}")
    b, c = control.shape[:2]
    out = control
    for axis in range(ndim):
        s = sp[axis]
        kernel = torch.as_tensor(_cubic_bspline((np.arange(4 * s - 1) - (2 * s - 1)) / s), dtype=control.dtype,
                                 device=control.device)
        moved = out.movedim(2 + axis, -1)  # (..., G_axis)
        lead = moved.shape[:-1]
        flat = moved.reshape(-1, 1, moved.shape[-1])
        up = F.conv_transpose1d(flat, kernel.view(1, 1, -1), stride=s)
        up = up[:, :, 3 * s - 1: 3 * s - 1 + shape[axis]]
        out = up.reshape(*lead, shape[axis]).movedim(-1, 2 + axis)
    return out.reshape(b, c, *shape)


# -- composition, inversion, integration, resizing ------------------------------------------------------
def compose_fields(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """One DDF for "warp with ``first``, then warp the result with ``second``".

    ``warp(warp(m, first), second) == warp(m, compose_fields(first, second))`` up to interpolation:
    ``u(x) = second(x) + first(x + second(x))``. For an affine pre-alignment followed by a deformable
    refinement, ``first`` is the affine field and ``second`` the deformable one.
    """
    return second + warp(first, second, padding="border")


def invert_field(ddf: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """Approximate inverse DDF by fixed-point iteration ``v(y) = -u(y + v(y))`` (Chen et al. 2008, Med.
    Phys. 35:81). Converges for fields whose Jacobian stays near the identity (no folding)."""
    inv = -ddf
    for _ in range(iterations):
        inv = -warp(ddf, inv, padding="border")
    return inv


def integrate_velocity(velocity: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """DDF of a stationary velocity field ``(B, ndim, *S)`` by scaling and squaring (Arsigny et al. 2006;
    used for learning by Dalca et al. 2018, MICCAI, "Unsupervised learning for fast probabilistic
    diffeomorphic registration"), with MONAI's :class:`~monai.networks.blocks.DVF2DDF`."""
    from monai.networks.blocks import DVF2DDF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = DVF2DDF(num_steps=steps, mode="bilinear", padding_mode="border")
    return layer(velocity)


def resize_field(ddf: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``ddf (B, ndim, *S)`` resampled to ``shape``, vectors rescaled to the new voxel size.

    With ``align_corners=True`` interpolation the corner voxels keep their positions, so the voxel size
    changes by ``(n_new - 1) / (n_old - 1)`` per axis.
    """
    ndim = ddf.shape[1]
    old = ddf.shape[2:]
    if tuple(old) == tuple(shape):
        return ddf
    mode = "bilinear" if ndim == 2 else "trilinear"
    out = F.interpolate(ddf, size=tuple(shape), mode=mode, align_corners=True)
    scale = torch.tensor([(n - 1) / max(o - 1, 1) for n, o in zip(shape, old, strict=True)], dtype=ddf.dtype,
                         device=ddf.device)
    return out * scale.view(1, ndim, *([1] * ndim))
