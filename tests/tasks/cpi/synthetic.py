"""Tiny synthetic compound-protein pairs with a learnable affinity, as a table and as a CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlearn.tasks.cpi.data import InteractionTable


def synthetic(n_comp: int = 10, n_prot: int = 8, seed: int = 0) -> InteractionTable:
    """Every compound x protein pair; affinity = 0.3 * compound index + 0.2 * (K residues) + 5."""
    rng = np.random.default_rng(seed)
    smiles = ["C" * (i + 1) + "O" * (i % 3) for i in range(n_comp)]
    seqs = ["".join(rng.choice(list("ACDEFGHIKL"), 30)) for _ in range(n_prot)]
    d, p = np.meshgrid(np.arange(n_comp), np.arange(n_prot), indexing="ij")
    d, p = d.ravel(), p.ravel()
    y = 0.3 * d + np.array([s.count("K") for s in seqs])[p] * 0.2 + 5.0
    return InteractionTable(smiles, seqs, d, p, y.astype(float), np.arange(len(d)))


def write_csv(table: InteractionTable, path: Path, split: np.ndarray | None = None) -> Path:
    """The pairs of ``table`` as a CSV (smiles, sequence, value[, split]); row i = pair i."""
    frame = pd.DataFrame({"smiles": [table.smiles[i] for i in table.drug],
                          "sequence": [table.sequences[i] for i in table.protein], "value": table.y})
    if split is not None:
        frame["split"] = split
    frame.to_csv(path, index=False)
    return path


def train_val_csv(path: Path, n_train: int = 64, seed: int = 0, binary: bool = False) -> tuple[Path, np.ndarray]:
    """The synthetic pairs with a split column: ``n_train`` random pairs train, the rest validate.
    Returns the CSV and the training rows."""
    table = synthetic()
    if binary:
        table.y = (table.y > np.median(table.y)).astype(float)
    idx = np.random.default_rng(seed).permutation(len(table))
    split = np.full(len(table), "val", dtype=object)
    split[idx[:n_train]] = "train"
    return write_csv(table, path, split), np.sort(idx[:n_train])
