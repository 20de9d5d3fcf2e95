"""Registration losses: image similarity, field smoothness and label overlap, by name.

All take batched tensors: images ``(B, C, *S)`` (``BCHW[D]``), fields ``(B, ndim, *S)`` in voxels,
one-hot labels ``(B, K, *S)``. Every loss is minimised (similarities are negated).

From MONAI: :class:`~monai.losses.LocalNormalizedCrossCorrelationLoss` (local NCC, as in VoxelMorph,
Balakrishnan et al. 2019, IEEE TMI 38:1788), :class:`~monai.losses.GlobalMutualInformationLoss`
(Parzen-window MI, Mattes et al. 2003 / Viola & Wells 1997, for multi-modal pairs),
:class:`~monai.losses.DiffusionLoss` (squared gradient of the field; Balakrishnan et al. 2019),
:class:`~monai.losses.BendingEnergyLoss` (second derivatives; Rueckert et al. 1999) and
:class:`~monai.losses.DiceLoss` (Milletari et al. 2016; label supervision as in Hu et al. 2018,
MedIA 49:1). Written here: the name lookup, intensity scaling for MI, and the weighted sum.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from medlearn.errors import InputError

__all__ = ["SIMILARITIES", "SMOOTHNESS", "DiceOverlapLoss", "LocalNCCLoss", "MSELoss", "MutualInformationLoss",
           "RegistrationLoss", "one_hot", "similarity_loss", "smoothness_loss", "unit_range"]

SIMILARITIES = ("mse", "ncc", "mi")
SMOOTHNESS = ("diffusion", "bending")


class MSELoss(nn.Module):
    """Mean squared intensity difference; for mono-modal pairs with equal intensity scales."""

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return torch.mean((warped - fixed) ** 2)


class LocalNCCLoss(nn.Module):
    """``-LNCC`` in ``[-1, 1]``: squared local normalised cross-correlation in ``kernel_size`` windows
    (MONAI), robust to smooth intensity changes such as bias fields."""

    def __init__(self, ndim: int, kernel_size: int = 7) -> None:
        super().__init__()
        from monai.losses import LocalNormalizedCrossCorrelationLoss

        self.loss = LocalNormalizedCrossCorrelationLoss(spatial_dims=ndim, kernel_size=kernel_size)

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.loss(warped, fixed)


def unit_range(image: torch.Tensor) -> torch.Tensor:
    """Per image and channel, min-max scaled to ``[0, 1]`` (the range MONAI's MI bins assume); the
    scaling constants are detached, so gradients flow only through the intensities."""
    flat = image.flatten(2)
    lo = flat.min(2).values.detach()
    hi = flat.max(2).values.detach()
    shape = (*image.shape[:2], *([1] * (image.ndim - 2)))
    return (image - lo.view(shape)) / (hi - lo).clamp_min(1e-8).view(shape)


class MutualInformationLoss(nn.Module):
    """``-MI`` of the joint intensity histogram (Gaussian Parzen windows, MONAI), images scaled to [0, 1]
    first; for multi-modal pairs whose intensities are related but not equal."""

    def __init__(self, num_bins: int = 32) -> None:
        super().__init__()
        from monai.losses import GlobalMutualInformationLoss

        self.loss = GlobalMutualInformationLoss(num_bins=num_bins)

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.loss(unit_range(warped), unit_range(fixed))


def similarity_loss(name: str, ndim: int, **kwargs: Any) -> nn.Module:
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
    from monai.losses import BendingEnergyLoss, DiffusionLoss

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
