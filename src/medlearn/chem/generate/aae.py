"""Adversarial autoencoder over molecular fingerprints (Kadurin et al., "The cornucopia of meaningful
leads: Applying deep adversarial autoencoders for new molecule development in oncology",
Oncotarget 2017; AAE: Makhzani et al. 2016).

An encoder maps a binary fingerprint ``(B, F)`` (MACCS keys, F = 167, as in the paper; or Morgan bits)
to a latent code ``(B, Z)``; a decoder reconstructs the fingerprint from the code and an optional
condition ``(B, C)`` (the paper's drug concentration / growth inhibition; here any property column);
a discriminator pushes the codes towards the N(0, I) prior. Sampling draws codes from the prior,
decodes fingerprint probabilities, and — as in the paper — screens a library of real molecules for
the nearest Tanimoto neighbours of the generated fingerprints, which become the proposed molecules.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def fingerprints(smiles: Sequence[str], kind: str = "maccs", n_bits: int = 1024) -> np.ndarray:
    """Binary fingerprints ``(N, F)`` float32: ``maccs`` (167 keys) or ``morgan`` (radius 2)."""
    if kind == "morgan":
        from medlearn.chem.featurize import morgan_fingerprints

        return morgan_fingerprints(smiles, 2, n_bits)
    from rdkit import Chem, RDLogger
    from rdkit.Chem import MACCSkeys

    RDLogger.DisableLog("rdApp.*")
    out = np.zeros((len(smiles), 167), dtype=np.float32)
    for i, s in enumerate(smiles):
        m = Chem.MolFromSmiles(s)
        if m is not None:
            out[i] = np.frombuffer(MACCSkeys.GenMACCSKeys(m).ToBitString().encode(), dtype=np.uint8) - ord("0")
    RDLogger.EnableLog("rdApp.*")
    return out


def _mlp(sizes: list[int], last_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*(layers if last_act else layers[:-1]))


class FingerprintAAE(nn.Module):
    """Encoder ``(B, F) -> (B, Z)``, decoder ``(B, Z + C) -> (B, F)`` logits, discriminator ``(B, Z) -> (B, 1)``."""

    def __init__(self, n_bits: int, latent: int = 8, hidden: int = 256, n_cond: int = 0) -> None:
        super().__init__()
        self.latent, self.n_cond = latent, n_cond
        self.encoder = _mlp([n_bits, hidden, hidden // 2, latent])
        self.decoder = _mlp([latent + n_cond, hidden // 2, hidden, n_bits])
        self.discriminator = _mlp([latent, 64, 64, 1])

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(torch.cat([z, cond], 1) if self.n_cond else z)


class _LitAAE(pl.LightningModule):
    def __init__(self, net: FingerprintAAE, lr: float) -> None:
        super().__init__()
        self.net, self.lr = net, lr
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        x, c = batch
        opt_ae, opt_d, opt_g = self.optimizers()
        bce = nn.functional.binary_cross_entropy_with_logits
        # 1) reconstruction
        z = self.net.encoder(x)
        rec = bce(self.net.decode(z, c), x)
        opt_ae.zero_grad()
        self.manual_backward(rec)
        opt_ae.step()
        # 2) discriminator: prior samples are "real", codes are "fake"
        z = self.net.encoder(x).detach()
        prior = torch.randn_like(z)
        d_real, d_fake = self.net.discriminator(prior), self.net.discriminator(z)
        d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        # 3) encoder as generator: fool the discriminator
        d_fake = self.net.discriminator(self.net.encoder(x))
        g_loss = bce(d_fake, torch.ones_like(d_fake))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"rec_loss": rec, "d_loss": d_loss, "g_loss": g_loss}, on_epoch=True, on_step=False)

    def configure_optimizers(self):
        ae = list(self.net.encoder.parameters()) + list(self.net.decoder.parameters())
        return (torch.optim.Adam(ae, lr=self.lr), torch.optim.Adam(self.net.discriminator.parameters(), lr=self.lr),
                torch.optim.Adam(self.net.encoder.parameters(), lr=self.lr))


class FingerprintAAEGenerator(BaseEstimator):
    """Fit the AAE on SMILES (+ optional condition values ``(N,)`` or ``(N, C)``), then propose molecules.

    ``sample(n, library, condition=None)`` decodes ``n`` prior codes and returns, for each, the
    library molecule with the highest Tanimoto similarity to the decoded fingerprint (thresholded at
    0.5), plus that similarity.
    """

    def __init__(self, fingerprint: str = "maccs", n_bits: int = 1024, latent: int = 8, hidden: int = 256,
                 max_epochs: int = 50, batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> None:
        self.fingerprint = fingerprint
        self.n_bits = n_bits
        self.latent = latent
        self.hidden = hidden
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed

    def fit(self, smiles: Sequence[str], condition: np.ndarray | None = None) -> FingerprintAAEGenerator:
        import logging

        X = fingerprints(list(smiles), self.fingerprint, self.n_bits)
        if condition is not None:
            C = np.asarray(condition, dtype=np.float32).reshape(len(X), -1)
            self.cond_mean_, self.cond_std_ = C.mean(0), C.std(0) + 1e-8
            C = (C - self.cond_mean_) / self.cond_std_
        else:
            C = np.zeros((len(X), 0), dtype=np.float32)
            self.cond_mean_ = self.cond_std_ = None
        pl.seed_everything(self.seed, verbose=False)
        self.net_ = FingerprintAAE(X.shape[1], self.latent, self.hidden, C.shape[1])
        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=self.max_epochs, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        gen = torch.Generator().manual_seed(self.seed)
        loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(C)), batch_size=self.batch_size,
                            shuffle=True, generator=gen)
        trainer.fit(_LitAAE(self.net_, self.lr), loader)
        self.net_.eval()
        with torch.no_grad():
            probs = torch.sigmoid(self.net_.decode(self.net_.encoder(torch.from_numpy(X)), torch.from_numpy(C)))
        from sklearn.metrics import roc_auc_score

        self.reconstruction_auc_ = float(roc_auc_score(X.ravel(), probs.numpy().ravel()))
        return self

    @torch.no_grad()
    def sample_fingerprints(self, n: int, condition: float | Sequence[float] | None = None,
                            seed: int = 0) -> np.ndarray:
        """``(n, F)`` bit probabilities decoded from prior samples (with the condition, if trained with one)."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.latent, generator=g)
        c = None
        if self.net_.n_cond:
            if condition is None:
                raise ValueError("this AAE was trained with a condition; pass condition=")
            cv = (np.asarray(condition, dtype=np.float32).reshape(1, -1) - self.cond_mean_) / self.cond_std_
            c = torch.from_numpy(np.repeat(cv, n, axis=0).astype(np.float32))
        return torch.sigmoid(self.net_.decode(z, c)).numpy()

    def sample(self, n: int, library: Sequence[str], condition=None, seed: int = 0,
               threshold: float = 0.5) -> tuple[list[str], np.ndarray]:
        """Nearest library molecule (Tanimoto) to each of ``n`` generated fingerprints, and the similarity."""
        gen = (self.sample_fingerprints(n, condition, seed) > threshold).astype(np.float32)
        lib = list(library)
        lib_fp = fingerprints(lib, self.fingerprint, self.n_bits)
        best, sims = [], []
        for row in gen:
            inter = lib_fp @ row
            union = lib_fp.sum(1) + row.sum() - inter
            sim = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
            j = int(np.argmax(sim))
            best.append(lib[j])
            sims.append(float(sim[j]))
        return best, np.asarray(sims)
