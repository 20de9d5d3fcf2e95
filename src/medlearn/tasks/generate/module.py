"""Training of the generator's networks: the token language model as a LightningModule (next-token
cross-entropy, padding ignored) and the fingerprint AAE's three-step adversarial loop."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.nn import functional as F

from medlearn.tasks.generate.nets import FingerprintAAE, RecurrentGenerator


class LanguageModelModule(pl.LightningModule):
    """Teacher-forced training of ``RecurrentGenerator`` on ``(B, L)`` BOS...EOS token batches."""

    def __init__(self, net: RecurrentGenerator, lr: float = 2e-3) -> None:
        super().__init__()
        self.net = net
        self.lr = lr

    def _loss(self, ids: torch.Tensor) -> torch.Tensor:
        logits, _ = self.net(ids[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=0)

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch[0])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> None:
        loss = self._loss(batch[0])
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def trim_collate(batch: list[tuple[torch.Tensor]]) -> tuple[torch.Tensor]:
    """Stack ``(L,)`` id rows and cut the all-padding columns at the end (less compute per batch)."""
    ids = torch.stack([b[0] for b in batch])
    length = int((ids != 0).sum(1).max())
    return (ids[:, :length],)


def train_aae(aae: FingerprintAAE, x: torch.Tensor, epochs: int, batch_size: int, lr: float,
              generator: torch.Generator) -> dict[str, float]:
    """Adversarial autoencoder training (Makhzani et al. 2016; Kadurin et al. 2017) on ``(N, n_bits)``
    fingerprints: per batch a reconstruction step (encoder + decoder, BCE on bits), a discriminator step
    (prior codes vs encoded codes) and a regularisation step (the encoder fools the discriminator).

    A plain loop: three optimisers stepping in turn per batch, no validation to select on. Returns the
    last batch's losses.
    """
    bce = F.binary_cross_entropy_with_logits
    opt_ae = torch.optim.Adam([*aae.encoder.parameters(), *aae.decoder.parameters()], lr=lr)
    opt_d = torch.optim.Adam(aae.discriminator.parameters(), lr=lr / 2)
    opt_g = torch.optim.Adam(aae.encoder.parameters(), lr=lr / 2)
    aae.train()
    rec = d_loss = torch.zeros(())
    for _epoch in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            xb = x[idx]
            rec = bce(aae.decode(aae.encode(xb)), xb)
            opt_ae.zero_grad()
            rec.backward()
            opt_ae.step()
            z_fake = aae.encode(xb).detach()
            z_real = torch.randn(z_fake.shape, generator=generator)
            d_loss = bce(aae.discriminate(z_real), torch.ones(len(xb))) + bce(
                aae.discriminate(z_fake), torch.zeros(len(xb)))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = bce(aae.discriminate(aae.encode(xb)), torch.ones(len(xb)))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    aae.eval()
    return {"reconstruction_bce": float(rec.item()), "discriminator_loss": float(d_loss.item())}
