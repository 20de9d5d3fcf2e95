"""Character/token-level LSTM language model for molecules (SMILES or SELFIES).

Segler et al., "Generating Focused Molecule Libraries for Drug Discovery with Recurrent Neural
Networks", ACS Cent. Sci. 2018. With SELFIES tokens (Krenn et al., Mach. Learn.: Sci. Technol. 2020)
every sampled token string decodes to a valid molecule.

Shapes: token ids ``(B, L)`` with ``<bos>`` first and ``<eos>`` then ``<pad>``; logits ``(B, L, V)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
_SMILES_TOKEN = re.compile(r"(\[[^\]]+\]|Br|Cl|Si|Se|@@|%\d{2}|[A-Za-z]|\d|\(|\)|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|\.)")


def tokenize(smiles: str, alphabet: str) -> list[str]:
    """SMILES -> tokens (``alphabet='smiles'``: atoms in brackets, Cl/Br... as one token) or SELFIES symbols."""
    if alphabet == "selfies":
        import selfies as sf

        return list(sf.split_selfies(sf.encoder(smiles)))
    return _SMILES_TOKEN.findall(smiles)


def detokenize(tokens: Sequence[str], alphabet: str) -> str:
    if alphabet == "selfies":
        import selfies as sf

        try:
            return sf.decoder("".join(tokens))
        except Exception:  # noqa: BLE001 - selfies raises DecoderError on malformed symbols
            return ""
    return "".join(tokens)


class LSTMLanguageModel(nn.Module):
    """Embedding -> LSTM -> linear; ``forward(ids (B, L)) -> logits (B, L, V)``."""

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        h, state = self.lstm(self.embed(ids), state)
        return self.out(h), state


class _LitLM(pl.LightningModule):
    def __init__(self, net: LSTMLanguageModel, lr: float, pad_id: int) -> None:
        super().__init__()
        self.net, self.lr, self.pad_id = net, lr, pad_id

    def _loss(self, batch):
        (ids,) = batch
        logits, _ = self.net(ids[:, :-1])
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                           ignore_index=self.pad_id)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_epoch=True, on_step=False, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class MoleculeLSTM(BaseEstimator):
    """Fit on SMILES, then :meth:`sample` new SMILES.

    Args:
        alphabet: ``selfies`` (default; every sample decodes to a molecule) or ``smiles``.
        hidden, layers, embed, dropout: network size.
        max_epochs, patience, batch_size, lr: training (early stopping on held-out 10% NLL).
        max_len: longest token sequence kept for training and sampling.
    """

    def __init__(self, alphabet: str = "selfies", hidden: int = 256, layers: int = 2, embed: int = 64,
                 dropout: float = 0.2, max_epochs: int = 30, patience: int = 5, batch_size: int = 128,
                 lr: float = 2e-3, max_len: int = 120, seed: int = 0, max_time_minutes: float | None = None) -> None:
        self.alphabet = alphabet
        self.hidden = hidden
        self.layers = layers
        self.embed = embed
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.max_len = max_len
        self.seed = seed
        self.max_time_minutes = max_time_minutes

    def _encode(self, tokens: list[list[str]]) -> torch.Tensor:
        L = max(len(t) for t in tokens) + 2
        ids = np.full((len(tokens), L), self.stoi_[PAD], dtype=np.int64)
        for i, t in enumerate(tokens):
            seq = [BOS, *t, EOS]
            ids[i, :len(seq)] = [self.stoi_[s] for s in seq]
        return torch.from_numpy(ids)

    def fit(self, smiles: Sequence[str]) -> MoleculeLSTM:
        import logging
        import warnings
        from datetime import timedelta

        from lightning.pytorch.callbacks import EarlyStopping

        from medlearn.chem.lit import KeepBestWeights

        if self.alphabet not in ("selfies", "smiles"):
            raise ValueError(f"alphabet={self.alphabet!r}: use 'selfies' or 'smiles'")
        tokens = []
        for s in smiles:
            try:
                t = tokenize(s, self.alphabet)
            except Exception:  # noqa: BLE001 - unencodable molecule: skip it
                continue
            if 0 < len(t) <= self.max_len:
                tokens.append(t)
        if len(tokens) < 10:
            raise ValueError(f"only {len(tokens)} encodable molecules; need at least 10 to train")
        vocab = sorted({tok for t in tokens for tok in t})
        self.itos_ = [PAD, BOS, EOS, *vocab]
        self.stoi_ = {s: i for i, s in enumerate(self.itos_)}
        ids = self._encode(tokens)
        perm = np.random.RandomState(self.seed).permutation(len(ids))
        n_val = max(1, len(ids) // 10)
        pl.seed_everything(self.seed, verbose=False)
        self.net_ = LSTMLanguageModel(len(self.itos_), self.embed, self.hidden, self.layers, self.dropout)
        lit = _LitLM(self.net_, self.lr, self.stoi_[PAD])
        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        keep = KeepBestWeights("val_loss", "min")
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=self.max_epochs, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, gradient_clip_val=1.0,
                             callbacks=[keep, EarlyStopping("val_loss", patience=self.patience)],
                             max_time=timedelta(minutes=self.max_time_minutes) if self.max_time_minutes else None)
        gen = torch.Generator().manual_seed(self.seed)
        train = DataLoader(TensorDataset(ids[perm[n_val:]]), batch_size=self.batch_size, shuffle=True, generator=gen)
        val = DataLoader(TensorDataset(ids[perm[:n_val]]), batch_size=512)
        trainer.fit(lit, train, val)
        self.val_nll_ = keep.best
        self.epochs_ = trainer.current_epoch
        self.training_smiles_ = list(smiles)
        return self

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, seed: int | None = None, batch: int = 500) -> list[str]:
        """``n`` SMILES strings (an empty string where a SMILES-alphabet sample does not decode)."""
        self.net_.eval()
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        out: list[str] = []
        bos, eos, pad = self.stoi_[BOS], self.stoi_[EOS], self.stoi_[PAD]
        while len(out) < n:
            b = min(batch, n - len(out))
            tok = torch.full((b, 1), bos, dtype=torch.long)
            state = None
            seqs = [[] for _ in range(b)]
            done = torch.zeros(b, dtype=torch.bool)
            for step in range(self.max_len + 1):
                logits, state = self.net_(tok, state)
                logits = logits[:, -1] / max(temperature, 1e-3)
                logits[:, pad] = -1e9
                logits[:, bos] = -1e9
                if step == 0:
                    logits[:, eos] = -1e9  # an empty string is never a molecule
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
                for i in np.flatnonzero(~done.numpy()):
                    t = int(nxt[i])
                    if t == eos:
                        done[i] = True
                    else:
                        seqs[i].append(self.itos_[t])
                if done.all():
                    break
                tok = nxt
            out.extend(detokenize(s, self.alphabet) for s in seqs)
        return out
