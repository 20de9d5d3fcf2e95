"""The classification ``LightningModule``: network, loss, optimiser and validation metrics."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from medlearn.nets import build_network
from medlearn.nets.classification import EnsembleClassifier
from medlearn.tasks.classify.outputs import TaskLoss, logits_to_proba, probability_link
from medlearn.tasks.classify.plan import ClassificationPlan
from medlearn.transforms.batch import augment_images


def combine_members(members: list[torch.nn.Module], plan: ClassificationPlan) -> torch.nn.Module:
    """One network from trained or fresh members: the member itself, or an ``EnsembleClassifier``
    averaging on the task's probability scale."""
    return members[0] if len(members) == 1 else EnsembleClassifier(members, link=probability_link(plan.task))


def build_classifier_network(plan: ClassificationPlan, single: bool = False) -> torch.nn.Module:
    """The plan's network; an ``EnsembleClassifier`` of ``plan.train.ensemble`` copies unless ``single``."""
    if plan.train.ensemble > 1 and not single:
        return combine_members([build_classifier_network(plan, single=True) for _ in range(plan.train.ensemble)],
                               plan)
    kwargs: dict[str, Any] = dict(spatial_dims=plan.spatial_dims, in_channels=plan.in_channels,
                                  num_outputs=plan.num_outputs, input_size=plan.input_size,
                                  dropout=plan.network.dropout, init=plan.network.init)
    if plan.network.widths:
        kwargs["widths"] = plan.network.widths
    return build_network(plan.network.name, **kwargs)


def validation_auc(labels: np.ndarray, proba: np.ndarray, task: str) -> float:
    """MedMNIST AUC: binary = AUC of class 1's score; otherwise the mean one-vs-rest / per-label AUC.

    NaN when undefined (a single class present). Labels ``(N,)`` or ``(N, K)`` (multilabel, NaN = missing).
    """
    try:
        if task == "binary":
            return float(roc_auc_score(labels, proba[:, 1]))
        if task == "multilabel":
            scores = []
            for k in range(labels.shape[1]):
                keep = ~np.isnan(labels[:, k])
                if keep.any() and len(np.unique(labels[keep, k])) == 2:
                    scores.append(roc_auc_score(labels[keep, k], proba[keep, k]))
            return float(np.mean(scores)) if scores else float("nan")
        scores = [roc_auc_score(labels == k, proba[:, k]) for k in range(proba.shape[1])
                  if 0 < (labels == k).sum() < len(labels)]
        return float(np.mean(scores)) if scores else float("nan")
    except ValueError:
        return float("nan")


#: fewer optimisation steps than this in the whole schedule: a constant learning rate (no one-cycle warm-up
#: and decay can be laid over 1-4 steps)
MIN_SCHEDULED_STEPS = 5


class ClassificationModule(pl.LightningModule):
    """Trains ``build_classifier_network(plan)``; logs ``train_loss``, ``val_loss``, ``val_auc``, ``val_acc``."""

    def __init__(self, plan: dict[str, Any], class_weights: list[float] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.plan = ClassificationPlan.from_dict(plan)
        self.net = build_classifier_network(self.plan, single=True)  # one (ensemble) member
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss = TaskLoss(self.plan.task, weights, self.plan.train.label_smoothing)
        self._val_logits: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self._augment_gen = torch.Generator().manual_seed(self.plan.train.seed)
        self._mixup_rng = np.random.default_rng(self.plan.train.seed)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment whole training batches (vectorised; see ``medlearn.transforms.batch``)."""
        if self.trainer is not None and self.trainer.training:
            x, y = batch
            return augment_images(x, self.plan.augment, self._augment_gen), y
        return batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        alpha = self.plan.augment.mixup
        if alpha > 0:
            # mixup: the loss is linear in the targets, so mixing the two losses mixes the targets
            lam = float(self._mixup_rng.beta(alpha, alpha))
            other = torch.randperm(len(x), generator=self._augment_gen).to(x.device)
            logits = self(lam * x + (1 - lam) * x[other])
            loss = lam * self.loss(logits, y) + (1 - lam) * self.loss(logits, y[other])
        else:
            loss = self.loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self._val_logits.append(logits.detach())
        self._val_labels.append(y.detach())

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            return
        logits = torch.cat(self._val_logits)
        labels = torch.cat(self._val_labels)
        self._val_logits.clear()
        self._val_labels.clear()
        if self.trainer.world_size > 1:  # DDP: each process saw a shard; score the whole validation set
            logits = self.all_gather(logits).flatten(0, 1)
            labels = self.all_gather(labels).flatten(0, 1)
        loss = self.loss(logits, labels)
        proba = logits_to_proba(logits, self.plan.task).cpu().numpy()
        y = labels.cpu().numpy()
        auc = validation_auc(y, proba, self.plan.task)
        if self.plan.task == "multilabel":
            acc = float(np.nanmean((proba > 0.5) == np.where(np.isnan(y), np.nan, y)))
        else:
            acc = float((proba.argmax(1) == y).mean())
        # an undefined AUC (one class in val) is logged as NaN, never 0: checkpoints treat NaN as the worst
        # score, and the plan monitors val_loss when the validation split holds a single class
        self.log_dict({"val_loss": loss, "val_auc": auc, "val_acc": acc}, prog_bar=True)

    def configure_optimizers(self) -> Any:
        t = self.plan.train
        if t.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        total = self._total_steps()
        if t.scheduler == "none" or total < MIN_SCHEDULED_STEPS:
            return opt
        # warm-up over 10% of the steps, but at least 2 (OneCycleLR divides by its warm-up length)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=total,
                                                    pct_start=min(0.5, max(0.1, 2.0 / total)), anneal_strategy="cos")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _total_steps(self) -> int:
        trainer = self.trainer
        return max(1, int(trainer.estimated_stepping_batches))
