"""Lightning training for the QSAR networks: masked multitask loss, validation-metric early stopping.

:class:`QSARLitModule` wraps a :class:`~medlearn.chem.nets.MultitaskMLP` or
:class:`~medlearn.chem.nets.DMPNN`. Regression targets are standardised per task on the training
rows (loss = masked MSE in standard units); classification uses masked BCE-with-logits. Missing
labels (NaN) contribute nothing. Validation computes the task's primary metric (mean ROC-AUC or
RMSE in original units) for early stopping; :class:`KeepBestWeights` restores the best epoch's weights.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch.utils.data import DataLoader, Dataset

from medlearn.chem.graph import MolGraph, batch_graphs
from medlearn.chem.metrics import primary_metric, qsar_metrics
from medlearn.engine.callbacks import StopOnNonFiniteLoss


class QSARLitModule(pl.LightningModule):
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
        score = qsar_metrics(self.task_type, y, pred)[self.metric_name]
        if not np.isfinite(score):
            score = -np.inf if self.higher_is_better else np.inf
        self.log("val_score", float(score), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class KeepBestWeights(Callback):
    """Keep an in-memory copy of the weights at the best ``monitor`` value; restore them at the end."""

    def __init__(self, monitor: str = "val_score", mode: str = "max") -> None:
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_epoch = -1
        self.state: dict | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, trainer.current_epoch
            self.state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


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


def fit_module(module: QSARLitModule, train: Dataset, val: Dataset | None, *, max_epochs: int, patience: int,
               batch_size: int, seed: int, trainer: pl.Trainer | None = None,
               max_time_minutes: float | None = None) -> dict:
    """Train ``module`` (early stopping on ``val_score`` when ``val`` is given); returns a small summary.

    Without ``trainer``, a minimal CPU Trainer without logger/checkpoints is used (for ensembles and
    benchmarks); with one (e.g. from :func:`medlearn.engine.trainer.build_trainer`) it is used as is.
    """
    from datetime import timedelta

    pl.seed_everything(seed, workers=False, verbose=False)
    mode = "max" if module.higher_is_better else "min"
    keep = KeepBestWeights("val_score", mode)
    if trainer is None:
        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        callbacks: list[Callback] = [keep, StopOnNonFiniteLoss()]
        if val is not None and patience:
            callbacks.append(EarlyStopping("val_score", mode=mode, patience=patience, check_finite=False))
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=callbacks, num_sanity_val_steps=0,
                             limit_val_batches=1.0 if val is not None else 0,
                             max_time=timedelta(minutes=max_time_minutes) if max_time_minutes else None)
    else:
        trainer.callbacks.append(keep)
    train_loader = make_loader(train, batch_size, True, seed)
    val_loader = make_loader(val, 1024, False) if val is not None else None
    trainer.fit(module, train_loader, val_loader)
    module.eval()
    return {"best_epoch": keep.best_epoch, "best_val": keep.best, "epochs": trainer.current_epoch}


@torch.no_grad()
def predict_module(module: QSARLitModule, dataset: Dataset, batch_size: int = 1024) -> np.ndarray:
    """``(N, T)`` probabilities or values in original units."""
    module.eval()
    outs = [module.predict_values(inputs).cpu().numpy() for inputs, _ in make_loader(dataset, batch_size, False)]
    return np.concatenate(outs) if outs else np.zeros((0, len(module.y_mean)))
