"""Registration losses: image similarity, field smoothness and label overlap, by name.

All take batched tensors: images ``(B, C, *S)`` (``BCHW[D]``), fields ``(B, ndim, *S)`` in voxels,
one-hot labels ``(B, K, *S)``. Every loss is minimised (similarities are negated).

From MONAI: :class:`~monai.losses.GlobalMutualInformationLoss`
(Parzen-window MI, Mattes et al. 2003 / Viola & Wells 1997, for multi-modal pairs),
the value of :class:`~monai.losses.DiffusionLoss` (squared gradient of the field; Balakrishnan et al. 2019;
computed here with a cheaper backward: :class:`DiffusionLoss`),
:class:`~monai.losses.BendingEnergyLoss` (second derivatives; Rueckert et al. 1999; the same, with a cheaper
backward: :class:`BendingEnergyLoss`) and
:class:`~monai.losses.DiceLoss` (Milletari et al. 2016; label supervision as in Hu et al. 2018,
MedIA 49:1). Written here: local NCC (VoxelMorph's, Balakrishnan et al. 2019, IEEE TMI 38:1788; MONAI's
value, faster on a CPU: :class:`LocalNCCLoss`), the name lookup, intensity scaling for MI, and the weighted
sum.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import InputError

__all__ = ["SIMILARITIES", "SMOOTHNESS", "BendingEnergyLoss", "DiceOverlapLoss", "DiffusionLoss", "LocalNCCLoss",
           "MSELoss", "MutualInformationLoss", "RegistrationLoss", "SimilarityLoss", "one_hot", "similarity_loss",
           "smoothness_loss", "unit_range", "window_sums"]

SIMILARITIES = ("mse", "ncc", "mi")
SMOOTHNESS = ("diffusion", "bending")


class SimilarityLoss(nn.Module):
    """``loss(warped, fixed)``, lower is better; :meth:`for_fixed` binds one fixed image (instance
    optimisation: hundreds of steps against it), precomputing what the loss can."""

    def for_fixed(self, fixed: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``score(warped) = loss(warped, fixed)`` for this one ``fixed`` image."""
        fixed = fixed.detach()
        return lambda warped: self(warped, fixed)


class MSELoss(SimilarityLoss):
    """Mean squared intensity difference; for mono-modal pairs with equal intensity scales."""

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return torch.mean((warped - fixed) ** 2)


def _box_sums(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    r = kernel_size // 2
    ndim = x.ndim - 2
    for axis in range(2, x.ndim):
        pad = [0] * (2 * ndim)
        pad[2 * (x.ndim - 1 - axis)] = pad[2 * (x.ndim - 1 - axis) + 1] = r
        padded = F.pad(x, pad)
        n = x.shape[axis]
        total = padded.narrow(axis, 0, n).clone()
        for shift in range(1, kernel_size):
            total += padded.narrow(axis, shift, n)
        x = total
    return x


class _WindowSums(torch.autograd.Function):
    """A zero-padded box sum is its own adjoint (symmetric window): the gradient is the box sum of the
    incoming gradient, with no graph of the ``kernel_size`` additions per axis."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        ctx.kernel_size = kernel_size
        return _box_sums(x, kernel_size)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _box_sums(grad, ctx.kernel_size), None


def window_sums(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``x (B, C, *S)`` -> the sum over the ``kernel_size``-wide box around each voxel, zeros outside the image
    (same shape): one axis at a time, ``kernel_size`` shifted slices added (no cumulative sum, whose
    differences lose the zeros of an image's background to rounding). Differentiable."""
    return _WindowSums.apply(x, int(kernel_size))


class LocalNCCLoss(SimilarityLoss):
    """``-LNCC`` in ``[-1, 0]``: minus the mean squared local normalised cross-correlation in
    ``kernel_size`` boxes (VoxelMorph, Balakrishnan et al. 2019), robust to smooth intensity changes such as
    bias fields.

    The same value as MONAI's :class:`~monai.losses.LocalNormalizedCrossCorrelationLoss` (rectangular kernel,
    zero padding, ``smooth_nr`` 0, ``smooth_dr`` 1e-5; tested against it), computed here because MONAI's
    separable convolutions make it ~4x slower on a CPU (0.22 s vs 0.05 s for a 79x95x111 forward and backward
    on one core, with :func:`window_sums`' own backward), and :meth:`for_fixed` keeps the fixed image's box
    statistics across an optimisation's steps.
    """

    smooth_dr = 1e-5

    def __init__(self, ndim: int, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.ndim, self.kernel_size, self.volume = ndim, int(kernel_size), float(kernel_size) ** ndim

    def _fixed_statistics(self, fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_sum = window_sums(fixed, self.kernel_size)
        t_var = torch.clamp_min(window_sums(fixed * fixed, self.kernel_size) - t_sum * t_sum / self.volume,
                                self.smooth_dr)
        return t_sum, t_var

    def _loss(self, warped: torch.Tensor, fixed: torch.Tensor, t_sum: torch.Tensor,
              t_var: torch.Tensor) -> torch.Tensor:
        channels = warped.shape[1]
        sums = window_sums(torch.cat([warped, warped * warped, warped * fixed], 1), self.kernel_size)
        p_sum, p2_sum, tp_sum = sums.split(channels, 1)
        p_avg = p_sum / self.volume
        cross = tp_sum - p_avg * t_sum
        p_var = torch.clamp_min(p2_sum - p_avg * p_sum, self.smooth_dr)
        return -torch.mean(cross * cross / (t_var * p_var))

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        if warped.shape != fixed.shape:
            raise ValueError(f"warped {tuple(warped.shape)} and fixed {tuple(fixed.shape)} differ in shape")
        return self._loss(warped, fixed, *self._fixed_statistics(fixed))

    def for_fixed(self, fixed: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``score(warped)`` against this one ``fixed`` image, its box statistics computed once."""
        fixed = fixed.detach()
        stats = self._fixed_statistics(fixed)
        return lambda warped: self._loss(warped, fixed, *stats)


def _interior(ndim: int, parts: dict[int, slice]) -> tuple[slice, ...]:
    """Index of ``(B, C, *S)``: ``parts[axis]`` along those spatial axes, the interior ``1:-1`` along the others."""
    return (slice(None), slice(None), *(parts.get(a, slice(1, -1)) for a in range(ndim)))


def _check_field(ddf: torch.Tensor) -> None:
    """A smoothness loss's input: ``(B, ndim, *S)``, 2D or 3D, every spatial size > 2 (central differences)."""
    if ddf.ndim not in (4, 5) or ddf.shape[1] != ddf.ndim - 2 or min(ddf.shape[2:]) <= 2:
        raise ValueError(f"expected a (B, ndim, *S) field with every spatial size > 2, got {tuple(ddf.shape)}")


class _Diffusion(torch.autograd.Function):
    """Mean squared central differences with a hand-written backward: autograd's would allocate and zero a
    full-size gradient for each of the ``2 ndim`` slices (most of a 3D refinement step's ``fill_`` time)."""

    @staticmethod
    def forward(ctx: Any, ddf: torch.Tensor) -> torch.Tensor:
        ndim = ddf.ndim - 2
        diffs = [(ddf[_interior(ndim, {a: slice(2, None)})] - ddf[_interior(ndim, {a: slice(None, -2)})]) / 2
                 for a in range(ndim)]
        ctx.save_for_backward(*diffs)
        ctx.shape = ddf.shape
        return sum(d.square().sum() for d in diffs) / diffs[0].numel()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        diffs = ctx.saved_tensors
        ndim = len(diffs)
        out = torch.zeros(ctx.shape, dtype=grad.dtype, device=grad.device)
        for axis, d in enumerate(diffs):  # d(mean g^2)/dx[i +- 1] = +- g / numel (g = (x[i+1] - x[i-1]) / 2)
            part = d * (grad / d.numel())
            out[_interior(ndim, {axis: slice(2, None)})] += part
            out[_interior(ndim, {axis: slice(None, -2)})] -= part
        return out


class DiffusionLoss(nn.Module):
    """Diffusion regulariser: the mean over batch, components and interior voxels of the squared first
    derivatives (central differences) of a field ``(B, ndim, *S)`` (Balakrishnan et al. 2019). The value of
    MONAI's :class:`~monai.losses.DiffusionLoss` (tested against it) with a backward ~3x cheaper on a CPU."""

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        _check_field(ddf)
        return _Diffusion.apply(ddf)


@functools.cache
def _bending_terms(ndim: int) -> list[tuple[float, list[tuple[float, tuple[slice, ...]]]]]:
    """MONAI's compact stencils of :class:`~monai.losses.BendingEnergyLoss` as ``(weight, [(coefficient, index)])``:
    ``[1, -2, 1]`` along each axis (weight 1) and the 4-point mixed derivative per axis pair (weight 2); every
    index takes the interior ``1:-1`` along the other axes, as MONAI does."""
    plus, minus = slice(2, None), slice(None, -2)

    def index(parts: dict[int, slice]) -> tuple[slice, ...]:  # short for the stencils below
        return _interior(ndim, parts)

    terms = []
    for a in range(ndim):
        terms.append((1.0, [(1.0, index({a: plus})), (-2.0, index({})), (1.0, index({a: minus}))]))
        for b in range(a + 1, ndim):
            terms.append((2.0, [(0.25, index({a: plus, b: plus})), (-0.25, index({a: plus, b: minus})),
                                (-0.25, index({a: minus, b: plus})), (0.25, index({a: minus, b: minus}))]))
    return terms


class _Bending(torch.autograd.Function):
    """Bending energy with a hand-written backward: each stencil's adjoint added into one gradient buffer
    (autograd would allocate and zero a full-size gradient per shifted slice, ~22 of them in 3D)."""

    @staticmethod
    def forward(ctx: Any, ddf: torch.Tensor) -> torch.Tensor:
        terms = _bending_terms(ddf.ndim - 2)
        derivatives = [sum(c * ddf[i] for c, i in stencil) for _, stencil in terms]
        ctx.save_for_backward(*derivatives)
        ctx.shape = ddf.shape
        numel = derivatives[0].numel()
        return sum(w * d.square().sum() for (w, _), d in zip(terms, derivatives, strict=True)) / numel

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        derivatives = ctx.saved_tensors
        terms = _bending_terms(len(ctx.shape) - 2)
        out = torch.zeros(ctx.shape, dtype=grad.dtype, device=grad.device)
        for (w, stencil), d in zip(terms, derivatives, strict=True):  # d(w mean d^2)/dx = 2 w d c / numel
            part = d * (grad * (2.0 * w / d.numel()))
            for c, i in stencil:
                out[i].add_(part, alpha=c)
        return out


class BendingEnergyLoss(nn.Module):
    """Bending energy (Rueckert et al. 1999): the mean over batch, components and interior voxels of the
    squared second derivatives of a field ``(B, ndim, *S)``, mixed ones counted twice -- the value of MONAI's
    :class:`~monai.losses.BendingEnergyLoss` (compact stencils; tested against it), forward and backward ~7x
    cheaper on a CPU (174 vs 1269 ms at 79x95x111, 2 threads). It leaves affine motion free, where
    :class:`DiffusionLoss` penalises every stretch."""

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        _check_field(ddf)
        return _Bending.apply(ddf)


def unit_range(image: torch.Tensor) -> torch.Tensor:
    """Per image and channel, min-max scaled to ``[0, 1]`` (the range MONAI's MI bins assume); the
    scaling constants are detached, so gradients flow only through the intensities."""
    flat = image.flatten(2)
    lo = flat.min(2).values.detach()
    hi = flat.max(2).values.detach()
    shape = (*image.shape[:2], *([1] * (image.ndim - 2)))
    return (image - lo.view(shape)) / (hi - lo).clamp_min(1e-8).view(shape)


class MutualInformationLoss(SimilarityLoss):
    """``-MI`` of the joint intensity histogram (Gaussian Parzen windows, MONAI), images scaled to [0, 1]
    first; for multi-modal pairs whose intensities are related but not equal."""

    def __init__(self, num_bins: int = 32) -> None:
        super().__init__()
        from monai.losses import GlobalMutualInformationLoss

        self.loss = GlobalMutualInformationLoss(num_bins=num_bins)

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.loss(unit_range(warped), unit_range(fixed))

    def for_fixed(self, fixed: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``score(warped)`` against this one ``fixed`` image, scaled to [0, 1] once."""
        scaled = unit_range(fixed.detach())
        return lambda warped: self.loss(unit_range(warped), scaled)


def similarity_loss(name: str, ndim: int, **kwargs: Any) -> SimilarityLoss:
    """``"mse"``, ``"ncc"`` (local NCC; ``kernel_size``) or ``"mi"`` (``num_bins``): ``loss(warped, fixed)``."""
    if name == "mse":
        return MSELoss()
    if name == "ncc":
        return LocalNCCLoss(ndim, **kwargs)
    if name == "mi":
        return MutualInformationLoss(**kwargs)
    raise InputError("similarity", f"unknown similarity loss '{name}'", f"choose one of {', '.join(SIMILARITIES)}")


def smoothness_loss(name: str) -> nn.Module:
    """``"diffusion"`` (mean squared first derivatives) or ``"bending"`` (bending energy): ``loss(ddf)``."""
    if name == "diffusion":
        return DiffusionLoss()
    if name == "bending":
        return BendingEnergyLoss()
    raise InputError("smoothness", f"unknown smoothness loss '{name}'", f"choose one of {', '.join(SMOOTHNESS)}")


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, 1, *S)`` integer labels -> ``(B, K, *S)`` float one-hot (labels >= K count as background)."""
    lab = labels[:, 0].long()
    lab = torch.where((lab >= 0) & (lab < num_classes), lab, torch.zeros_like(lab))
    return nn.functional.one_hot(lab, num_classes).movedim(-1, 1).float()


class DiceOverlapLoss(nn.Module):
    """``1 - Dice`` of warped one-hot moving labels and fixed labels, foreground classes, per item then
    averaged (MONAI :class:`~monai.losses.DiceLoss`). Warp the one-hot labels *bilinearly* so the loss has
    gradients (nearest-neighbour warping has none)."""

    def __init__(self) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.loss = DiceLoss(include_background=False)

    def forward(self, warped_onehot: torch.Tensor, fixed_onehot: torch.Tensor) -> torch.Tensor:
        return self.loss(warped_onehot, fixed_onehot)


class RegistrationLoss(nn.Module):
    """``similarity(warped, fixed) + smoothness_weight * smoothness(ddf) [+ dice_weight * dice]``.

    The weighted sum of VoxelMorph (Balakrishnan et al. 2019: unsupervised, and with the auxiliary
    segmentation loss when labels are given).
    ``forward`` returns the total and its parts (detached) for logging.
    """

    def __init__(self, ndim: int, similarity: str = "ncc", smoothness: str = "diffusion",
                 smoothness_weight: float = 1.0, dice_weight: float = 0.0, **similarity_kwargs: Any) -> None:
        super().__init__()
        self.similarity = similarity_loss(similarity, ndim, **similarity_kwargs)
        self.smoothness = smoothness_loss(smoothness)
        self.smoothness_weight = float(smoothness_weight)
        self.dice_weight = float(dice_weight)
        self.dice = DiceOverlapLoss()

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor, ddf: torch.Tensor,
                warped_onehot: torch.Tensor | None = None,
                fixed_onehot: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sim = self.similarity(warped, fixed)
        with warnings.catch_warnings():  # MONAI's DiffusionLoss indexes with a list: a torch notice every step
            warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
            smooth = self.smoothness(ddf)
        total = sim + self.smoothness_weight * smooth
        parts = {"similarity": sim.detach(), "smoothness": smooth.detach()}
        if self.dice_weight > 0 and warped_onehot is not None and fixed_onehot is not None:
            dice = self.dice(warped_onehot, fixed_onehot)
            total = total + self.dice_weight * dice
            parts["dice_loss"] = dice.detach()
        return total, parts
