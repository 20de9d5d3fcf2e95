"""Lightning training of the token language model: next-token cross-entropy (padding ignored)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.nn import functional as F

from medlearn.molgen.nets import RecurrentGenerator


class LanguageModelModule(pl.LightningModule):
    """Teacher-forced training of ``RecurrentGenerator`` on ``(B, L)`` BOS...EOS token batches."""

    def __init__(self, net: RecurrentGenerator, lr: float = 2e-3) -> None:
        super().__init__()
        self.net = net
        self.lr = lr

    def _loss(self, ids: torch.Tensor) -> torch.Tensor:
        logits, _ = self.net(ids[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=0)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def trim_collate(batch: list[tuple[torch.Tensor]]) -> tuple[torch.Tensor]:
    """Stack ``(L,)`` id rows and cut the all-padding columns at the end (less compute per batch)."""
    ids = torch.stack([b[0] for b in batch])
    length = int((ids != 0).sum(1).max())
    return (ids[:, :length],)
