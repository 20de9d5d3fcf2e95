"""The LightningModule of learned registration: network by name, similarity + smoothness (+ Dice) loss.

Unsupervised training as VoxelMorph (Balakrishnan et al. 2019, IEEE TMI 38:1788): the network predicts
the field from ``(moving, fixed)``, the moving image is warped by it, and the loss is
``similarity(warped, fixed) + smoothness_weight * smoothness(field)``; with label maps and
``dice_weight > 0`` the bilinearly warped one-hot moving labels are also compared with the fixed ones
(weak supervision, Hu et al. 2018 MedIA 49:1; VoxelMorph's auxiliary segmentation loss).

Batches are dicts: ``"fixed"``, ``"moving"`` ``(B, 1, *S)`` float, optional ``"fixed_label"`` and
``"moving_label"`` ``(B, 1, *S)`` integers ``0..num_labels-1`` (remap sparse ids such as FreeSurfer's
before). Logged: ``train_loss`` (and its parts), ``val_loss``, ``val_ncc`` (global NCC of warped and
fixed, mean over pairs) and, with labels, ``val_dice`` (nearest-neighbour-warped labels, mean over the
foreground classes present). With ``pyramid`` (e.g. ``[4, 2, 1]``) the training steps move from 1/4 to
full resolution in equal shares of the step budget (:func:`~.nets.pyramid_factor`); validation is always
at full resolution. No ``Trainer`` is built here (the engine does that).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from medlearn.plan import setting
from medlearn.tasks.register.losses import RegistrationLoss, one_hot
from medlearn.tasks.register.nets import build_registration_network, pyramid_factor
from medlearn.tasks.register.transforms import warp, warp_labels

__all__ = ["RegistrationModule", "RegistrationSettings", "batch_ncc", "build_network", "label_dice"]


@dataclass
class RegistrationSettings:
    """What :class:`RegistrationModule` needs; :meth:`from_plan` reads them from a
    :class:`~.plan.RegistrationPlan`."""

    network: str = setting("voxelmorph", help="registration network: affine, globalnet, voxelmorph, "
                                              "diffeomorphic, bspline or affine+voxelmorph")
    ndim: int = setting(2, min=2, max=3, help="spatial dimensions of the images")
    channels: list[int] = setting(factory=lambda: [16, 32, 32, 32], help="network features (voxelmorph: "
                                                                          "down/up pairs per level)")
    similarity: Literal["mse", "ncc", "mi"] = setting("ncc", help="image similarity: mse, local ncc, or mutual "
                                                                   "information (multi-modal)")
    ncc_kernel: int = setting(7, min=3, help="local NCC window (voxels, odd)")
    smoothness: Literal["diffusion", "bending"] = setting("diffusion", help="field regulariser")
    smoothness_weight: float = setting(1.0, min=0, help="weight of the regulariser")
    dice_weight: float = setting(0.0, min=0, help="weight of the Dice loss on warped labels (0: off)")
    num_labels: int = setting(0, min=0, help="label classes including background (0: from each batch)")
    lr: float = setting(1e-3, min=0, exclusive_min=True, help="Adam learning rate")
    image_size: list[int] | None = setting(None, help="fixed input size (globalnet only)")
    control_spacing: int = setting(8, min=1, help="B-spline control-point spacing in voxels (bspline)")
    integration_steps: int = setting(7, min=1, help="scaling-and-squaring steps (diffeomorphic)")
    affine_channels: list[int] = setting(factory=lambda: [16, 32, 64, 64], help="affine stage (affine+voxelmorph)")
    mi_bins: int = setting(32, min=4, help="mutual-information histogram bins")
    pyramid: list[int] = setting(factory=lambda: [1], min=1, help="downsampling factors of progressive "
                                                                   "training, coarse to fine, e.g. [4, 2, 1]")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegistrationSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_plan(cls, plan: Any) -> RegistrationSettings:
        """The settings of a :class:`~.plan.RegistrationPlan` (its network, loss and train sections)."""
        n, loss, t = plan.network, plan.loss, plan.train
        return cls(network=n.name, ndim=plan.ndim, channels=list(n.channels), similarity=loss.similarity,
                   ncc_kernel=loss.ncc_kernel, smoothness=loss.smoothness, smoothness_weight=loss.smoothness_weight,
                   dice_weight=loss.dice_weight if plan.num_labels else 0.0, num_labels=plan.num_labels, lr=t.lr,
                   image_size=list(plan.data.working_shape) if n.name == "globalnet" else None,
                   control_spacing=n.control_spacing, integration_steps=n.integration_steps,
                   affine_channels=list(n.affine_channels), mi_bins=loss.mi_bins, pyramid=list(t.pyramid))


def batch_ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Global NCC per batch item ``(B,)`` of ``(B, C, *S)`` images."""
    x = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    y = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (x * y).sum(1) / ((x * x).sum(1) * (y * y).sum(1)).sqrt().clamp_min(1e-12)


def label_dice(pred: torch.Tensor, target: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Mean foreground Dice per batch item ``(B,)`` of ``(B, 1, *S)`` label maps, over the classes
    present in either map (NaN when none is)."""
    p, t = one_hot(pred, num_labels)[:, 1:], one_hot(target, num_labels)[:, 1:]
    inter = (p * t).flatten(2).sum(2)
    total = p.flatten(2).sum(2) + t.flatten(2).sum(2)
    present = total > 0
    dice = torch.where(present, 2 * inter / total.clamp_min(1), torch.zeros_like(total))
    return dice.sum(1) / present.sum(1).to(dice.dtype)  # NaN where no class is present


def build_network(s: RegistrationSettings) -> torch.nn.Module:
    """The registration network ``s`` names (:func:`~.nets.build_registration_network`)."""
    options: dict[str, Any] = {"control_spacing": s.control_spacing, "integration_steps": s.integration_steps,
                               "affine_channels": tuple(s.affine_channels)}
    if s.image_size is not None:
        options["image_size"] = tuple(s.image_size)
    return build_registration_network(s.network, s.ndim, s.channels, **options)


class RegistrationModule(pl.LightningModule):
    """Learned pairwise registration; see the module docstring. ``forward(moving, fixed) -> ddf``."""

    def __init__(self, settings: RegistrationSettings | dict[str, Any]) -> None:
        super().__init__()
        s = settings if isinstance(settings, RegistrationSettings) else RegistrationSettings.from_dict(settings)
        self.save_hyperparameters({"settings": dataclasses.asdict(s)})
        self.settings = s
        self.net = build_network(s)
        sim_kwargs = {"kernel_size": s.ncc_kernel} if s.similarity == "ncc" else (
            {"num_bins": s.mi_bins} if s.similarity == "mi" else {})
        self.loss_fn = RegistrationLoss(s.ndim, s.similarity, s.smoothness, s.smoothness_weight, s.dice_weight,
                                        **sim_kwargs)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.net(moving, fixed)

    # -- helpers --------------------------------------------------------------------------------------------
    def _num_labels(self, batch: dict[str, torch.Tensor]) -> int:
        if self.settings.num_labels:
            return self.settings.num_labels
        return int(max(batch["fixed_label"].max(), batch["moving_label"].max())) + 1

    def _progress(self) -> float:
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            return 1.0
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else trainer.estimated_stepping_batches
        return float(self.global_step) / max(1.0, float(total))

    def _loss(self, batch: dict[str, torch.Tensor], factor: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                                              torch.Tensor, torch.Tensor]:
        fixed, moving = batch["fixed"].float(), batch["moving"].float()
        labels = "fixed_label" in batch and "moving_label" in batch
        k = self._num_labels(batch) if labels else 0
        if factor > 1:
            size = [max(4, n // factor) for n in fixed.shape[2:]]
            fixed = F.interpolate(fixed, size=size, mode="area")
            moving = F.interpolate(moving, size=size, mode="area")
        ddf = self.net(moving, fixed)
        warped = warp(moving, ddf)
        wo = fo = None
        if labels and self.settings.dice_weight > 0:
            mo, fo = one_hot(batch["moving_label"], k), one_hot(batch["fixed_label"], k)
            if factor > 1:
                mo, fo = F.interpolate(mo, size=fixed.shape[2:], mode="area"), F.interpolate(fo, size=fixed.shape[2:],
                                                                                               mode="area")
            wo = warp(mo, ddf, padding="zeros")
        loss, parts = self.loss_fn(warped, fixed, ddf, wo, fo)
        return loss, parts, ddf, warped

    # -- steps ----------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        factor = pyramid_factor(self._progress(), self.settings.pyramid)
        loss, parts, _, _ = self._loss(batch, factor)
        b = batch["fixed"].shape[0]
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=b)
        for name, value in parts.items():
            self.log(f"train_{name}", value, on_step=False, on_epoch=True, batch_size=b)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, _, ddf, warped = self._loss(batch, 1)
        b = batch["fixed"].shape[0]
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=b)
        self.log("val_ncc", batch_ncc(warped, batch["fixed"].float()).mean(), on_epoch=True, batch_size=b)
        if "fixed_label" in batch and "moving_label" in batch:
            k = self._num_labels(batch)
            moved = warp_labels(batch["moving_label"], ddf)
            dice = label_dice(moved, batch["fixed_label"], k)
            dice = dice[torch.isfinite(dice)]
            if dice.numel():
                self.log("val_dice", dice.mean(), prog_bar=True, on_epoch=True, batch_size=int(dice.numel()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.settings.lr)
