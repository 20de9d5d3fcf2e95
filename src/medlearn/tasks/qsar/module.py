"""The QSAR networks' LightningModule: masked multitask loss, the validation score that selects epochs.

:class:`QSARModule` wraps a :class:`~medlearn.tasks.qsar.nets.MultitaskMLP` or
:class:`~medlearn.tasks.qsar.nets.DMPNN`. Regression targets are standardised per task on the training
rows (loss = masked MSE in standard units); classification uses masked BCE-with-logits. Missing
labels (NaN) contribute nothing. Each validation epoch logs ``val_score``, the task's primary metric
(mean ROC-AUC, or mean RMSE in original units), which the engine's trainer early-stops and keeps the
best checkpoint on (:meth:`medlearn.engine.members.MemberJob.trainer`).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medlearn.chem.graph import MolGraph, batch_graphs


class QSARModule(pl.LightningModule):
    """Masked multitask QSAR training around ``net``.

    Batches are ``(inputs, y)`` with ``y (B, T)`` float and NaN = missing; ``inputs`` is a tensor
    ``(B, D)`` for the MLP or ``(GraphBatch, extra or None)`` for the D-MPNN.
    """

    def __init__(self, net: torch.nn.Module, task_type: str, y_mean: np.ndarray, y_std: np.ndarray,
                 lr: float = 1e-3, weight_decay: float = 1e-5, pos_weight: np.ndarray | None = None) -> None:
        super().__init__()
        self.net = net
        self.task_type = task_type
        self.lr = lr
        self.weight_decay = weight_decay
        self.register_buffer("y_mean", torch.as_tensor(y_mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.as_tensor(y_std, dtype=torch.float32))
        pw = torch.ones_like(self.y_mean) if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        self.register_buffer("pos_weight", pw)
        self.metric_name, self.higher_is_better = primary_metric(task_type)
        self._val_out: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, inputs) -> torch.Tensor:
        """Raw outputs: logits (classification) or standardised values (regression), ``(B, T)``."""
        if isinstance(inputs, (tuple, list)):
            return self.net(*inputs)
        return self.net(inputs)

    def predict_values(self, inputs) -> torch.Tensor:
        """Probabilities (classification) or values in original units (regression), ``(B, T)``."""
        out = self(inputs)
        if self.task_type == "classification":
            return torch.sigmoid(out)
        return out * self.y_std + self.y_mean

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mask = ~torch.isnan(y)
        y0 = torch.where(mask, y, torch.zeros_like(y))
        if self.task_type == "classification":
            per = torch.nn.functional.binary_cross_entropy_with_logits(out, y0, reduction="none",
                                                                       pos_weight=self.pos_weight)
        else:
            per = (out - (y0 - self.y_mean) / self.y_std) ** 2
        per = per * mask
        return per.sum() / mask.sum().clamp(min=1)

    def training_step(self, batch, batch_idx):
        inputs, y = batch
        loss = self._loss(self(inputs), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, y = batch
        self._val_out.append((self.predict_values(inputs).detach().cpu().numpy(), y.cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_out:
            return
        pred = np.concatenate([p for p, _ in self._val_out])
        y = np.concatenate([t for _, t in self._val_out])
        self._val_out = []
        score = primary_score(self.task_type, y, pred)
        if not np.isfinite(score):
            score = -np.inf if self.higher_is_better else np.inf
        self.log("val_score", float(score), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def primary_metric(task_type: str) -> tuple[str, bool]:
    """(name, higher_is_better) of the metric that selects epochs and models on the validation set."""
    return ("roc_auc", True) if task_type == "classification" else ("rmse", False)


def primary_score(task_type: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Mean ROC-AUC over the scorable tasks (classification) or mean RMSE over the tasks (regression)."""
    from medlearn.evaluation.multitask import binary_scores
    from medlearn.evaluation.regression import regression_scores

    if task_type == "classification":
        return binary_scores(y, pred)["roc_auc"]
    return regression_scores(y, pred)["rmse"]


def target_stats(Y: np.ndarray, task_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-task ``(mean, std, pos_weight)`` of the training labels ``(N, T)`` (NaN = missing)."""
    Y = np.asarray(Y, dtype=float)
    if task_type == "classification":
        pos = np.nansum(Y, axis=0)
        neg = np.sum(~np.isnan(Y), axis=0) - pos
        # mild re-weighting of rare positives (sqrt of the imbalance, capped) helps ROC-AUC on Tox21-like sets
        pos_weight = np.clip(np.sqrt(np.maximum(neg, 1) / np.maximum(pos, 1)), 1.0, 10.0)
        return np.zeros(Y.shape[1]), np.ones(Y.shape[1]), pos_weight
    mean = np.nan_to_num(np.nanmean(Y, axis=0))
    std = np.nan_to_num(np.nanstd(Y, axis=0), nan=1.0)
    return mean, np.where(std > 1e-8, std, 1.0), None


class ArrayDataset(Dataset):
    """``X (N, D)`` float32 + ``Y (N, T)`` (NaN = missing) -> ``(x, y)`` tensors."""

    def __init__(self, X: np.ndarray, Y: np.ndarray | None) -> None:
        self.X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        n_t = 1 if Y is None else np.asarray(Y).reshape(len(X), -1).shape[1]
        Y = np.full((len(X), n_t), np.nan) if Y is None else np.asarray(Y).reshape(len(X), -1)
        self.Y = torch.as_tensor(Y, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.Y[i]


class GraphDataset(Dataset):
    """Molecular graphs (+ optional extra features ``(N, D)``) and labels; use :func:`collate_graphs`."""

    def __init__(self, graphs: Sequence[MolGraph], Y: np.ndarray | None, extra: np.ndarray | None = None,
                 n_tasks: int = 1) -> None:
        self.graphs = list(graphs)
        Y = np.full((len(graphs), n_tasks), np.nan) if Y is None else np.asarray(Y).reshape(len(graphs), -1)
        self.Y = torch.as_tensor(Y, dtype=torch.float32)
        self.extra = None if extra is None else torch.as_tensor(np.asarray(extra, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i):
        return i


def collate_graphs(dataset: GraphDataset):
    def collate(idx: list[int]):
        g = batch_graphs([dataset.graphs[i] for i in idx])
        extra = None if dataset.extra is None else dataset.extra[idx]
        return (g, extra), dataset.Y[idx]
    return collate


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    collate = collate_graphs(dataset) if isinstance(dataset, GraphDataset) else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=gen,
                      num_workers=0)


@torch.no_grad()
def predict_module(module: QSARModule, dataset: Dataset, batch_size: int = 1024) -> np.ndarray:
    """``(N, T)`` probabilities or values in original units."""
    module.eval()
    outs = [module.predict_values(inputs).cpu().numpy() for inputs, _ in make_loader(dataset, batch_size, False)]
    return np.concatenate(outs) if outs else np.zeros((0, len(module.y_mean)))
