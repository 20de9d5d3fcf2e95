"""The LightningModule: network, ROI-masked Dice + cross-entropy, time-based poly LR, validation Dice.

Batches: ``image (B, C, *P)``, ``label (B, *P)`` int64, ``weight (B, *P)`` float (1 inside ROI and
image). The loss only counts voxels with weight 1 (nnU-Net's Dice + CE, Isensee et al. 2021, with
a batch Dice over foreground classes, Milletari et al. 2016). Validation predicts whole cases with
:class:`SlidingWindowPredictor` and logs ``val_dice``: foreground Dice pooled over all validation
voxels inside the ROI, averaged over classes.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch

from medlearn.imaging.predictor import SlidingWindowPredictor
from medlearn.nets import build_network
from medlearn.tasks.segment.augment import augment_batch
from medlearn.tasks.segment.plan import SegmentationPlan, planned_steps, should_compile


class MeanLogits(torch.nn.Module):
    """An ensemble of segmentation networks as one network: ``(B, C, *S)`` -> mean logits ``(B, K, *S)``.

    Averaging logits rather than probabilities keeps every consumer (sliding window, ONNX export,
    argmax) unchanged; on DRIVE validation it ranked pixels as well (AUC .9733 vs .9731 for 2 members).
    """

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for member in self.members[1:]:
            out = out + member(x)
        return out / len(self.members)


def build_segmentation_net(plan: SegmentationPlan, single: bool = False) -> torch.nn.Module:
    """The plan's network (``single``: one member, even when the plan trains an ensemble).

    The U-Net uses batch norm, so whole-image and windowed outputs agree.
    """
    kwargs: dict[str, Any] = {"spatial_dims": plan.ndim, "in_channels": plan.in_channels,
                              "out_channels": plan.num_classes, "channels": plan.network.channels,
                              "strides": plan.network.strides, "dropout": plan.network.dropout}
    if single or plan.train.ensemble == 1:
        return build_network(plan.network.name, **kwargs)
    return MeanLogits([build_network(plan.network.name, **kwargs) for _ in range(plan.train.ensemble)])


def masked_dice_ce(logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, kind: str = "dice_ce",
                   smooth: float = 1e-5) -> torch.Tensor:
    """Dice (batch, foreground classes) + cross-entropy, both restricted to ``weight > 0``.

    ``logits (B, K, *P)``, ``label (B, *P)`` int64, ``weight (B, *P)`` float. Written without a
    one-hot ``(B, K, *P)`` label tensor: the intersection and label volume per class are scattered
    from the true-class probabilities, which keeps 3D patches with dozens of classes cheap (one
    log-softmax serves both terms).
    """
    k = logits.shape[1]
    total = weight.sum().clamp_min(1.0)
    logp = torch.log_softmax(logits, 1)
    logp_true = logp.gather(1, label.unsqueeze(1)).squeeze(1)  # (B, *P)
    loss = logits.new_zeros(())
    if kind in ("dice_ce", "ce"):
        loss = loss - (logp_true * weight).sum() / total
    if kind in ("dice_ce", "dice"):
        flat_label = label.reshape(-1)
        w = weight.to(logits.dtype).reshape(weight.shape[0], -1)  # (B, N)
        zeros = logits.new_zeros(k)
        inter = zeros.index_add(0, flat_label, (logp_true.exp().reshape(w.shape) * w).reshape(-1))  # (K,)
        label_volume = zeros.index_add(0, flat_label, w.reshape(-1))  # (K,)
        probs = logp.exp().reshape(logits.shape[0], k, -1)  # (B, K, N)
        pred_volume = torch.einsum("bkn,bn->k", probs, w)
        dice = (2 * inter[1:] + smooth) / (pred_volume[1:] + label_volume[1:] + smooth)
        loss = loss + 1 - dice.mean()
    return loss


class SegmentationModule(pl.LightningModule):
    """U-Net family training on patches; see the module docstring."""

    def __init__(self, plan: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.plan = SegmentationPlan.from_dict(plan)
        self.net = build_segmentation_net(self.plan, single=True)
        self.gen = torch.Generator().manual_seed(self.plan.train.seed)
        self.elapsed_before = 0.0  # training seconds from earlier (resumed) sessions
        self._start: float | None = None
        self._val: list[torch.Tensor] = []
        # the training forward; a compiled view of self.net (kept out of the module tree so the
        # state_dict keys stay those of self.net) when the plan compiles
        self.__dict__["_train_forward"] = self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -- memory layout ------------------------------------------------------------------------
    def _layout(self) -> torch.memory_format | None:
        if self.plan.train.memory_format != "channels_last":
            return None
        return torch.channels_last if self.plan.ndim == 2 else torch.channels_last_3d

    def use_training_layout(self) -> None:
        """Put the network's weights in the plan's memory layout (what ``setup("fit")`` does, without
        compiling: the engine's step timing uses it)."""
        layout = self._layout()
        if layout is not None:
            self.net.to(memory_format=layout)

    def setup(self, stage: str) -> None:
        # before the strategy wraps the model: DDP's gradient buckets must see the final layout
        if stage == "fit":
            self.use_training_layout()
        if stage == "fit" and should_compile(self.plan.train):
            from medlearn.engine.compile import compiled_forward

            self.__dict__["_train_forward"] = compiled_forward(self.net)

    def on_fit_end(self) -> None:  # hand back an ordinary network (ONNX export, saving, inference)
        self.net.to(memory_format=torch.contiguous_format)
        self.__dict__["_train_forward"] = self.net

    # -- schedule ---------------------------------------------------------------------------
    def progress(self) -> float:
        """Fraction of the budget used: the larger of the step and wall-clock fractions."""
        t = self.plan.train
        steps = self.global_step / max(1, planned_steps(t))
        if not t.max_minutes:
            return min(1.0, steps)
        now = time.perf_counter() - (self._start or time.perf_counter()) + self.elapsed_before
        return min(1.0, max(steps, now / (t.max_minutes * 60)))

    def on_train_start(self) -> None:
        self._start = time.perf_counter()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.plan.train.lr_schedule == "poly":
            lr = self.plan.train.lr * (1 - self.progress()) ** 0.9
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = max(lr, self.plan.train.lr * 1e-3)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        start = self._start or time.perf_counter()
        checkpoint["medlearn_elapsed"] = self.elapsed_before + time.perf_counter() - start

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.elapsed_before = float(checkpoint.get("medlearn_elapsed", 0.0))

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        image, label, weight = batch
        # flips/rotations were done by the patch sampler (PatchDataset(flip_rotate=True))
        image, label, weight = augment_batch(image, label, weight, self.plan.train.augmentation, self.gen,
                                             flips=False)
        layout = self._layout()
        if layout is not None:
            image = image.contiguous(memory_format=layout)
        # bf16 autocast covers the network only (a no-op for CUDA tensors, which Lightning's
        # precision plugin handles); the loss sees float32 logits
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.plan.train.precision == "bf16"):
            logits = self._train_forward(image)
        loss = masked_dice_ce(logits.float(), label, weight, self.plan.train.loss)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=image.shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        image, label, weight = (b[0] for b in batch)
        predictor = SlidingWindowPredictor(self.net, self.plan.train.patch_size, self.plan.divisor,
                                           self.plan.inference.whole_image_max_voxels,
                                           self.plan.inference.overlap, self.plan.inference.sw_batch_size)
        pred = predictor.logits(image.cpu()).argmax(0)
        inside = weight.cpu() > 0
        k = self.plan.num_classes
        stats = torch.zeros(k - 1, 3)
        for c in range(1, k):
            p, g = (pred == c) & inside, (label.cpu() == c) & inside
            stats[c - 1] = torch.tensor([(p & g).sum(), p.sum(), g.sum()], dtype=torch.float32)
        self._val.append(stats)
        self.net.train(False)

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        s = torch.stack(self._val).sum(0)
        if self.trainer.world_size > 1:  # DDP: each process predicted a shard of the validation cases
            s = self.all_gather(s).sum(0)
        dice = torch.where(s[:, 1] + s[:, 2] > 0, 2 * s[:, 0] / (s[:, 1] + s[:, 2]).clamp_min(1), torch.ones(1))
        self.log("val_dice", dice.mean(), prog_bar=True)
        self._val.clear()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        t = self.plan.train
        if t.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=t.lr, momentum=0.99, nesterov=True,
                                   weight_decay=t.weight_decay)
        cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        return cls(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
