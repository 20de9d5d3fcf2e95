"""CPI model: compound fingerprint tower + protein k-mer tower -> affinity (regression).

Protein: normalised 1-, 2- and 3-mer composition of the residue sequence (k-mer spectrum features, as
in e.g. SimBoost/KronRLS-style baselines; a 1D CNN over residues as in DeepDTA is the heavier
alternative). Compound: Morgan count fingerprint (log1p). Each tower is an MLP; the two embeddings
and their element-wise product go through an MLP head (``(B, F_d), (B, F_p) -> (B,)``). Trained with
MSE, early stopping on a validation fold.
"""

from __future__ import annotations

import itertools

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def kmer_counts(sequences: list[str], ks: tuple[int, ...] = (1, 2, 3)) -> np.ndarray:
    """``(P, 20 + 400 + 8000)`` k-mer frequencies (each k block sums to 1; other letters ignored)."""
    blocks = []
    for k in ks:
        index = {"".join(t): i for i, t in enumerate(itertools.product(AMINO, repeat=k))}
        X = np.zeros((len(sequences), len(index)), dtype=np.float32)
        for r, s in enumerate(sequences):
            s = s.upper()
            for i in range(len(s) - k + 1):
                j = index.get(s[i:i + k])
                if j is not None:
                    X[r, j] += 1
            X[r] /= max(X[r].sum(), 1)
        blocks.append(X)
    return np.concatenate(blocks, 1)


class ProteinKmerEncoder(BaseEstimator):
    """k-mer frequencies, standardised, projected on their top principal components (``(P, <= 256)``).

    Fitted on the proteins of the training data (unsupervised); ``transform`` encodes new sequences.
    """

    def __init__(self, ks: tuple[int, ...] = (1, 2, 3), n_components: int = 256) -> None:
        self.ks = ks
        self.n_components = n_components

    def fit(self, sequences: list[str]) -> ProteinKmerEncoder:
        from sklearn.decomposition import PCA

        X = kmer_counts(sequences, self.ks)
        self.mean_, self.std_ = X.mean(0), X.std(0) + 1e-6
        Z = (X - self.mean_) / self.std_
        self.pca_ = PCA(n_components=max(1, min(self.n_components, min(Z.shape) - 1)), random_state=0).fit(Z)
        self.scale_ = float(self.pca_.transform(Z)[:, 0].std() + 1e-6)
        return self

    def transform(self, sequences: list[str]) -> np.ndarray:
        Z = (kmer_counts(sequences, self.ks) - self.mean_) / self.std_
        return (self.pca_.transform(Z) / self.scale_).astype(np.float32)


def kmer_features(sequences: list[str], ks: tuple[int, ...] = (1, 2, 3), n_components: int = 256) -> np.ndarray:
    """Fit :class:`ProteinKmerEncoder` on ``sequences`` and encode them."""
    return ProteinKmerEncoder(ks, n_components).fit(sequences).transform(sequences)


class TwoTowerCPI(nn.Module):
    def __init__(self, d_drug: int, d_prot: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.drug = nn.Sequential(nn.Linear(d_drug, 512), nn.ReLU(), nn.Dropout(dropout), nn.Linear(512, hidden),
                                  nn.ReLU())
        self.prot = nn.Sequential(nn.Linear(d_prot, 512), nn.ReLU(), nn.Dropout(dropout), nn.Linear(512, hidden),
                                  nn.ReLU())
        self.head = nn.Sequential(nn.Linear(3 * hidden, 512), nn.ReLU(), nn.Dropout(dropout), nn.Linear(512, 128),
                                  nn.ReLU(), nn.Linear(128, 1))

    def forward(self, xd: torch.Tensor, xp: torch.Tensor) -> torch.Tensor:
        d, p = self.drug(xd), self.prot(xp)
        return self.head(torch.cat([d, p, d * p], 1)).squeeze(1)


class _Lit(pl.LightningModule):
    def __init__(self, net: TwoTowerCPI, Xd: torch.Tensor, Xp: torch.Tensor, mean: float, std: float,
                 lr: float, wd: float) -> None:
        super().__init__()
        self.net, self.Xd, self.Xp, self.mean, self.std, self.lr, self.wd = net, Xd, Xp, mean, std, lr, wd
        self._val: list = []

    def forward(self, di, pi):
        return self.net(self.Xd[di], self.Xp[pi]) * self.std + self.mean

    def training_step(self, batch, batch_idx):
        di, pi, y = batch
        loss = ((self.net(self.Xd[di], self.Xp[pi]) - (y - self.mean) / self.std) ** 2).mean()
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        di, pi, y = batch
        self._val.append(((self(di, pi) - y) ** 2).sum().item())
        self._n = getattr(self, "_n", 0) + len(y)

    def on_validation_epoch_end(self):
        if self._val:
            self.log("val_mse", sum(self._val) / self._n, prog_bar=True)
        self._val, self._n = [], 0

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.wd)


class CPIRegressor(BaseEstimator):
    """Fit on pair indices into per-drug / per-protein feature tables.

    ``fit(Xd (D, F_d), Xp (P, F_p), drug_idx, prot_idx, y, val=(drug_idx, prot_idx, y))``;
    ``predict(drug_idx, prot_idx) -> (N,)``.
    """

    def __init__(self, hidden: int = 256, dropout: float = 0.1, lr: float = 1e-3, weight_decay: float = 1e-5,
                 batch_size: int = 256, max_epochs: int = 100, patience: int = 15, seed: int = 0,
                 max_time_minutes: float | None = None) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.max_time_minutes = max_time_minutes

    def fit(self, Xd, Xp, drug_idx, prot_idx, y, val=None) -> CPIRegressor:
        import logging
        import warnings
        from datetime import timedelta

        from lightning.pytorch.callbacks import EarlyStopping
        from torch.utils.data import DataLoader, TensorDataset

        from medlearn.chem.lit import KeepBestWeights

        pl.seed_everything(self.seed, verbose=False)
        Xd_t, Xp_t = torch.as_tensor(Xd, dtype=torch.float32), torch.as_tensor(Xp, dtype=torch.float32)
        y = np.asarray(y, dtype=np.float32)
        net = TwoTowerCPI(Xd_t.shape[1], Xp_t.shape[1], self.hidden, self.dropout)
        self.lit_ = _Lit(net, Xd_t, Xp_t, float(y.mean()), float(y.std() + 1e-6), self.lr, self.weight_decay)

        def ds(d, p, t):
            return TensorDataset(torch.as_tensor(np.asarray(d), dtype=torch.long),
                                 torch.as_tensor(np.asarray(p), dtype=torch.long),
                                 torch.as_tensor(np.asarray(t), dtype=torch.float32))

        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        keep = KeepBestWeights("val_mse", "min")
        callbacks = [keep] + ([EarlyStopping("val_mse", patience=self.patience)] if val is not None else [])
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=self.max_epochs, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, callbacks=callbacks,
                             limit_val_batches=1.0 if val is not None else 0,
                             max_time=timedelta(minutes=self.max_time_minutes) if self.max_time_minutes else None)
        g = torch.Generator().manual_seed(self.seed)
        train_loader = DataLoader(ds(drug_idx, prot_idx, y), batch_size=self.batch_size, shuffle=True, generator=g)
        val_loader = DataLoader(ds(*val), batch_size=4096) if val is not None else None
        trainer.fit(self.lit_, train_loader, val_loader)
        self.lit_.eval()
        self.best_val_mse_, self.best_epoch_, self.epochs_ = keep.best, keep.best_epoch, trainer.current_epoch
        return self

    @torch.no_grad()
    def predict_features(self, xd: np.ndarray, xp: np.ndarray) -> np.ndarray:
        """Affinity for paired feature rows ``xd (N, F_d)``, ``xp (N, F_p)`` -> ``(N,)``."""
        self.lit_.eval()
        xd_t, xp_t = torch.as_tensor(xd, dtype=torch.float32), torch.as_tensor(xp, dtype=torch.float32)
        out = [self.lit_.net(xd_t[s:s + 8192], xp_t[s:s + 8192]) * self.lit_.std + self.lit_.mean
               for s in range(0, len(xd_t), 8192)]
        return torch.cat(out).numpy() if out else np.zeros(0)

    @torch.no_grad()
    def predict(self, drug_idx, prot_idx) -> np.ndarray:
        self.lit_.eval()
        d = torch.as_tensor(np.asarray(drug_idx), dtype=torch.long)
        p = torch.as_tensor(np.asarray(prot_idx), dtype=torch.long)
        return np.concatenate([self.lit_(d[s:s + 8192], p[s:s + 8192]).numpy() for s in range(0, len(d), 8192)])


def drug_features(smiles: list[str], n_bits: int = 1024) -> np.ndarray:
    from medlearn.chem.featurize import morgan_fingerprints

    return np.log1p(morgan_fingerprints(smiles, 2, n_bits, counts=True))
