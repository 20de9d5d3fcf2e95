"""The CPI LightningModule (regression: MSE on standardised values; classification: BCE) and its batch
sampler (random, or protein-grouped batches)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Sampler

from medlearn.evaluation.affinity import affinity_metrics


class ProteinGroupedBatchSampler(Sampler[list[int]]):
    """Batches whose pairs come from few proteins, so the protein CNN runs on fewer sequences.

    Each epoch: proteins in random order, pairs of a protein in random order, the concatenation cut
    into windows of ``batch_size * mix`` pairs, each window shuffled and split into ``mix`` batches,
    and the batch order shuffled. ``mix`` large = nearly random batches, ``mix = 0`` = ordinary
    random batches (for cheap protein branches such as k-mer features); every pair is seen once per
    epoch either way. Yields lists of ``<= batch_size`` pair positions.
    """

    def __init__(self, protein_idx: np.ndarray, batch_size: int, mix: int = 4, seed: int = 0) -> None:
        if batch_size < 1 or mix < 0:
            raise ValueError(f"batch_size must be >= 1 and mix >= 0, got {batch_size}, {mix}")
        self.protein_idx = np.asarray(protein_idx)
        self.batch_size = batch_size
        self.mix = mix
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.protein_idx) // self.batch_size) if len(self.protein_idx) else 0

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        n = len(self.protein_idx)
        if self.mix == 0:
            order = rng.permutation(n)
            for s in range(0, n, self.batch_size):
                yield order[s:s + self.batch_size].tolist()
            return
        rank = rng.permutation(int(self.protein_idx.max()) + 1)[self.protein_idx]
        order = np.lexsort((rng.random(n), rank))  # by shuffled protein, random within protein
        window = self.batch_size * self.mix
        batches = []
        for s in range(0, n, window):
            chunk = order[s:s + window]
            chunk = chunk[rng.permutation(len(chunk))]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        # splitting windows can leave more, smaller batches than len(); merge the tail ones
        while len(batches) > len(self):
            small = min(range(len(batches)), key=lambda i: len(batches[i]))
            piece = batches.pop(small)
            batches[min(small, len(batches) - 1)] += piece
        for i in rng.permutation(len(batches)):
            yield batches[i]


class AffinityModule(pl.LightningModule):
    """Trains ``net`` (``DeepDTA``) on batches ``(drug_idx (B,), protein_idx (B,), y (B,))``.

    ``compounds`` ``(D, Ls)`` / ``proteins`` ``(P, Lp)`` hold the encoded unique entities of the
    training data (non-persistent buffers: the model file stores the raw strings instead).
    """

    def __init__(self, net: torch.nn.Module, compounds: torch.Tensor, proteins: torch.Tensor, task: str,
                 y_mean: float = 0.0, y_std: float = 1.0, lr: float = 1e-3, weight_decay: float = 0.0,
                 lr_schedule: str = "none", lr_patience: int = 5) -> None:
        super().__init__()
        if lr_schedule not in ("none", "plateau"):
            raise ValueError(f"lr_schedule must be 'none' or 'plateau', got {lr_schedule!r}")
        self.net = net
        self.task = task
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.lr_patience = lr_patience
        self.register_buffer("compounds", compounds, persistent=False)
        self.register_buffer("proteins", proteins, persistent=False)
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, drug_idx: torch.Tensor, protein_idx: torch.Tensor) -> torch.Tensor:
        """Raw output ``(B,)``: standardised affinity or interaction logit."""
        return self.net(self.compounds, self.proteins, drug_idx, protein_idx)

    def predict_values(self, drug_idx: torch.Tensor, protein_idx: torch.Tensor) -> torch.Tensor:
        out = self(drug_idx, protein_idx)
        return torch.sigmoid(out) if self.task == "classification" else out * self.y_std + self.y_mean

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        return torch.nn.functional.mse_loss(out, (y - self.y_mean) / self.y_std)

    def training_step(self, batch, batch_idx):
        d, p, y = batch
        loss = self._loss(self(d, p), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        d, p, y = batch
        self._val.append((self.predict_values(d, p).detach().cpu().numpy(), y.cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        pred = np.concatenate([v[0] for v in self._val])
        y = np.concatenate([v[1] for v in self._val])
        self._val.clear()
        if self.task == "classification":
            from sklearn.metrics import roc_auc_score

            auc = roc_auc_score(y, pred) if len(np.unique(y)) == 2 else float("nan")
            self.log("val_auc", float(auc))
        else:
            m = affinity_metrics(y, pred)
            self.log("val_mse", m["mse"])
            self.log("val_ci", m["ci"])

    def configure_optimizers(self):
        """Adam (Kingma & Ba 2015); ``lr_schedule="plateau"`` halves the learning rate when the
        validation metric has not improved for ``lr_patience`` epochs (``ReduceLROnPlateau``)."""
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "none":
            return opt
        monitor, mode = monitor_for(self.task)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=self.lr_patience,
                                                           min_lr=self.lr / 64)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor, "interval": "epoch"}}


def monitor_for(task: str) -> tuple[str, str]:
    """(validation metric, mode) used for early stopping and the best checkpoint."""
    return ("val_auc", "max") if task == "classification" else ("val_mse", "min")
