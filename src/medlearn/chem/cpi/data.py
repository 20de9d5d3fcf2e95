"""CPI inputs: the DeepDTA affinity-matrix layout (Öztürk et al., Bioinformatics 2018) and pair CSVs.

DeepDTA layout (``shared/data/davis_kiba_dta/<davis|kiba>/``): ``ligands_can.txt`` (JSON id -> SMILES,
matrix rows), ``proteins.txt`` (JSON id -> sequence, matrix columns), the affinity matrix (whitespace
text; Davis Kd in nM is converted to pKd = -log10(Kd / 1e9)), and ``folds/train_fold_setting1.txt`` /
``test_fold_setting1.txt`` (positions into the row-major list of non-NaN matrix entries).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.errors import InputError


@dataclass
class PairTable:
    """Interaction pairs: ``drug_idx``/``prot_idx`` ``(P,)`` into ``smiles``/``sequences``, affinity ``y (P,)``."""

    smiles: list[str]
    sequences: list[str]
    drug_idx: np.ndarray
    prot_idx: np.ndarray
    y: np.ndarray
    folds: dict | None = None  # {"train": [5 lists], "test": list} of positions into the pairs


def load_deepdta(folder: str | Path) -> PairTable:
    """Read a DeepDTA dataset folder (``davis`` or ``kiba``)."""
    folder = Path(folder)
    try:
        ligands = json.loads((folder / "ligands_can.txt").read_text(), object_pairs_hook=OrderedDict)
        proteins = json.loads((folder / "proteins.txt").read_text(), object_pairs_hook=OrderedDict)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(folder, f"not a DeepDTA folder ({exc})",
                         "expected ligands_can.txt, proteins.txt, the affinity matrix and folds/") from exc
    mats = [p for p in folder.glob("*.txt") if p.name not in ("ligands_can.txt", "proteins.txt")]
    if len(mats) != 1:
        raise InputError(folder, f"expected one affinity matrix .txt, found {len(mats)}")
    Y = np.loadtxt(mats[0])
    if Y.shape != (len(ligands), len(proteins)):
        raise InputError(mats[0], f"matrix shape {Y.shape} does not match {len(ligands)} ligands x "
                         f"{len(proteins)} proteins")
    if "davis" in folder.name.lower() or np.nanmin(Y) >= 1.0 and np.nanmax(Y) >= 1000:
        Y = -np.log10(Y / 1e9)  # Kd (nM) -> pKd
    rows, cols = np.where(~np.isnan(Y))
    folds = None
    tr, te = folder / "folds" / "train_fold_setting1.txt", folder / "folds" / "test_fold_setting1.txt"
    if tr.exists() and te.exists():
        folds = {"train": json.loads(tr.read_text()), "test": json.loads(te.read_text())}
    return PairTable(list(ligands.values()), list(proteins.values()), rows, cols, Y[rows, cols], folds)


def load_pair_csv(path: str | Path, smiles_column: str = "smiles", sequence_column: str = "sequence",
                  target_column: str = "y") -> PairTable:
    """A CSV of (SMILES, protein sequence, value) rows; invalid SMILES rows are dropped."""
    from medlearn.chem.data import parse_smiles, read_csv

    df = read_csv(path)
    for c in (smiles_column, sequence_column, target_column):
        if c not in df.columns:
            raise InputError(path, f"no column '{c}'", f"columns are: {', '.join(map(str, df.columns))}")
    df = df[[parse_smiles(str(s).strip()) is not None for s in df[smiles_column]]]
    smiles = sorted(set(df[smiles_column].astype(str).str.strip()))
    seqs = sorted(set(df[sequence_column].astype(str).str.strip()))
    si, pi = {s: i for i, s in enumerate(smiles)}, {s: i for i, s in enumerate(seqs)}
    return PairTable(smiles, seqs, np.array([si[s.strip()] for s in df[smiles_column].astype(str)]),
                     np.array([pi[s.strip()] for s in df[sequence_column].astype(str)]),
                     df[target_column].to_numpy(dtype=float))
