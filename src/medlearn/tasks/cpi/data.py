"""Compound-protein pairs: a CSV of (SMILES, sequence, value) or the DeepDTA affinity-matrix layout.

Davis (Davis et al., Nat. Biotechnol. 2011): 68 compounds x 442 kinases, Kd in nM, converted to
pKd = -log10(Kd / 1e9) as in DeepDTA. KIBA (Tang et al., J. Chem. Inf. Model. 2014): 2111 x 229 KIBA
scores, NaN = not measured. The DeepDTA folds (setting 1) index the non-NaN entries of the matrix
enumerated row-major (``np.where(~np.isnan(Y))``): five training folds and one test fold.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn.errors import InputError

DATASETS = ("davis", "kiba")
_AFFINITY_FILES = {"davis": "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt",
                   "kiba": "kiba_binding_affinity_v2.txt"}
SMILES_COLUMNS = ("smiles", "compound_smiles", "compound", "drug", "ligand", "compound_iso_smiles")
SEQUENCE_COLUMNS = ("sequence", "protein", "target_sequence", "target", "protein_sequence", "seq")
VALUE_COLUMNS = ("value", "affinity", "label", "y", "pkd", "kiba", "interaction")


@dataclass
class InteractionTable:
    """Pairs as indices into unique compounds and proteins.

    Attributes:
        smiles: ``(D,)`` unique compound SMILES.
        sequences: ``(P,)`` unique protein sequences.
        drug: ``(N,)`` int index into ``smiles`` per pair.
        protein: ``(N,)`` int index into ``sequences`` per pair.
        y: ``(N,)`` float values (NaN when unlabelled, e.g. for prediction).
        rows: ``(N,)`` source row (CSV) or flat matrix position of each pair.
        folds: named index arrays into the pairs (``train``, ``val``, ``test``; Davis/KIBA also
            ``fold0`` ... ``fold4``).
        invalid_rows: CSV rows skipped for an unparsable SMILES or an empty sequence.
    """

    smiles: list[str]
    sequences: list[str]
    drug: np.ndarray
    protein: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    folds: dict[str, np.ndarray] = field(default_factory=dict)
    invalid_rows: list[int] = field(default_factory=list)
    source: str = ""
    protein_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> InteractionTable:
        """The pairs at ``idx`` (unique compound/protein lists are kept whole)."""
        idx = np.asarray(idx, dtype=int)
        return InteractionTable(self.smiles, self.sequences, self.drug[idx], self.protein[idx], self.y[idx],
                                self.rows[idx], {}, [], self.source, self.protein_names)


def pkd_from_kd_nm(kd_nm: np.ndarray) -> np.ndarray:
    """pKd = -log10(Kd [M]) from Kd in nM (DeepDTA's Davis transform)."""
    return -np.log10(np.asarray(kd_nm, dtype=np.float64) / 1e9)


def _read_json(path: Path) -> OrderedDict:
    try:
        return json.loads(path.read_text(), object_pairs_hook=OrderedDict)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read JSON ({type(exc).__name__})", "is the davis_kiba_dta layout intact?") \
            from exc


def resolve_matrix_root(root: str | Path, dataset: str | None) -> tuple[Path, str]:
    """Accept the bundle folder (with davis/ and kiba/) or one dataset folder; return (folder, name)."""
    root = Path(root)
    if dataset is not None and dataset not in DATASETS:
        raise InputError("--dataset", f"unknown dataset '{dataset}'", f"choose one of {', '.join(DATASETS)}")
    if (root / "ligands_can.txt").is_file():
        name = dataset or ("kiba" if (root / _AFFINITY_FILES["kiba"]).exists() else "davis")
        return root, name
    name = dataset or "davis"
    if (root / name / "ligands_can.txt").is_file():
        return root / name, name
    raise InputError(root, f"no {name}/ligands_can.txt here", "give the davis_kiba_dta folder or a CSV of pairs")


def load_affinity_matrix(root: str | Path, dataset: str | None = None) -> InteractionTable:
    """Davis or KIBA in the DeepDTA layout, with folds ``fold0..fold4`` (training) and ``test``."""
    folder, name = resolve_matrix_root(root, dataset)
    ligands = _read_json(folder / "ligands_can.txt")
    proteins = _read_json(folder / "proteins.txt")
    path = folder / _AFFINITY_FILES[name]
    try:
        Y = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the affinity matrix ({exc})") from exc
    if Y.shape != (len(ligands), len(proteins)):
        raise InputError(path, f"matrix is {Y.shape}, expected {len(ligands)} x {len(proteins)}")
    if name == "davis":
        Y = pkd_from_kd_nm(Y)
    drug, protein = np.where(~np.isnan(Y))  # row-major: the order the DeepDTA folds index
    y = Y[drug, protein]
    folds: dict[str, np.ndarray] = {}
    fold_dir = folder / "folds"
    if (fold_dir / "test_fold_setting1.txt").exists():
        train_folds = json.loads((fold_dir / "train_fold_setting1.txt").read_text())
        for k, f in enumerate(train_folds):
            folds[f"fold{k}"] = np.asarray(f, dtype=int)
        folds["test"] = np.asarray(json.loads((fold_dir / "test_fold_setting1.txt").read_text()), dtype=int)
    return InteractionTable(list(ligands.values()), list(proteins.values()), drug.astype(int), protein.astype(int),
                            y, drug * Y.shape[1] + protein, folds, [], str(folder), list(proteins.keys()))


def _pick(df: pd.DataFrame, given: str | None, candidates: tuple[str, ...], what: str, src: str,
          required: bool = True) -> str | None:
    if given is not None:
        if given not in df.columns:
            raise InputError(src, f"no column '{given}'", f"columns are: {', '.join(map(str, df.columns))}")
        return given
    lower = {str(c).strip().lower(): c for c in df.columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        columns = ", ".join(map(str, df.columns))
        raise InputError(src, f"no {what} column found", f"pass the column name (columns: {columns})")
    return None


def _values(df: pd.DataFrame, column: str, src: str) -> np.ndarray:
    """``(N,)`` float64 values of ``df[column]``: empty cells NaN (the row is skipped), any other
    non-number or an infinite value an :class:`InputError` naming the row."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = (np.isnan(values) & df[column].notna().to_numpy()) | np.isinf(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(src, f"value column '{column}' has {df[column].iloc[first]!r} at row {first}",
                         "values must be finite numbers; leave a cell empty for an unmeasured pair")
    return values


def load_pairs_csv(path: str | Path, smiles_column: str | None = None, sequence_column: str | None = None,
                   value_column: str | None = None, require_values: bool = True) -> InteractionTable:
    """CSV of (SMILES, protein sequence[, value]) rows; optional ``split`` column (train/val/test).

    Rows with an unparsable SMILES or an empty/non-letter sequence are reported and skipped.
    """
    from medlearn.chem.data import parse_smiles, read_csv

    df = read_csv(path)
    src = str(path)
    s_col = _pick(df, smiles_column, SMILES_COLUMNS, "SMILES", src)
    q_col = _pick(df, sequence_column, SEQUENCE_COLUMNS, "protein sequence", src)
    v_col = _pick(df, value_column, VALUE_COLUMNS, "value", src, required=require_values)
    y = np.full(len(df), np.nan)
    if v_col is not None:
        y = _values(df, v_col, src)
    smiles_raw = df[s_col].astype("string").fillna("").str.strip().tolist()
    seq_raw = df[q_col].astype("string").fillna("").str.strip().str.upper().tolist()
    keep, invalid = [], []
    parsed: dict[str, bool] = {}
    for i, (s, q) in enumerate(zip(smiles_raw, seq_raw, strict=True)):
        if s not in parsed:
            parsed[s] = parse_smiles(s) is not None
        if parsed[s] and q.isalpha() and (v_col is None or not require_values or not np.isnan(y[i])):
            keep.append(i)
        else:
            invalid.append(i)
    if not keep:
        raise InputError(src, "no valid (SMILES, sequence, value) row", "check the column names and contents")
    keep_arr = np.asarray(keep, dtype=int)
    smiles_u, drug = np.unique(np.asarray(smiles_raw, dtype=object)[keep_arr].astype(str), return_inverse=True)
    seq_u, protein = np.unique(np.asarray(seq_raw, dtype=object)[keep_arr].astype(str), return_inverse=True)
    folds: dict[str, np.ndarray] = {}
    if "split" in df.columns:
        split = df["split"].astype("string").fillna("").str.strip().str.lower().to_numpy()[keep_arr]
        for name in ("train", "val", "test"):
            if (split == name).any():
                folds[name] = np.flatnonzero(split == name)
    return InteractionTable(list(smiles_u), list(seq_u), drug.astype(int), protein.astype(int), y[keep_arr],
                            keep_arr, folds, invalid, src)


def load_interactions(data: str | Path, dataset: str | None = None, **csv_kwargs: Any) -> InteractionTable:
    """A CSV file of pairs, or a davis_kiba_dta folder (``dataset`` = davis | kiba)."""
    path = Path(data)
    if path.is_dir():
        return load_affinity_matrix(path, dataset)
    if not path.exists():
        raise InputError(path, "not found", "give a CSV of (smiles, sequence, value) or the davis_kiba_dta folder")
    return load_pairs_csv(path, **csv_kwargs)


def check_trainable(table: InteractionTable, train: np.ndarray) -> None:
    """Refuse training pairs a model cannot learn from: all values equal (a constant affinity, or one
    class of 0/1 interactions) makes the loss, the CI and the AUC meaningless."""
    y = table.y[np.asarray(train, dtype=int)]
    if len(y) and np.nanmax(y) == np.nanmin(y):
        raise InputError(table.source, f"every training pair has the value {float(y[0]):g}",
                         "give pairs with different affinities (or both 0 and 1 interactions)")


def pair_keys(table: InteractionTable, idx: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` int64 keys of the pairs ``idx`` (all by default): a hash of the canonical SMILES and the
    sequence, so the same pair in another file or spelling gets the same key."""
    from medlearn.chem.data import parse_smiles

    idx = np.arange(len(table)) if idx is None else np.asarray(idx, dtype=int)
    canonical = []
    for s in table.smiles:
        mol = parse_smiles(s)
        canonical.append(s if mol is None else _canonical(mol))
    drug_key = np.asarray([_hash64(c) for c in canonical], dtype=np.int64)
    protein_key = np.asarray([_hash64(q) for q in table.sequences], dtype=np.int64)
    d, p = drug_key[table.drug[idx]], protein_key[table.protein[idx]]
    with np.errstate(over="ignore"):  # a hash combination: wrap-around is intended
        return (d * np.int64(1_000_003)) ^ p


def _canonical(mol: Any) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(mol)


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def describe_invalid(table: InteractionTable, limit: int = 10) -> str | None:
    """One line naming the skipped rows (an invalid SMILES, sequence or value), or None.

    (:func:`medlearn.chem.data.describe_invalid` says "invalid SMILES": here a row may also fail on its
    sequence or value.)
    """
    if not table.invalid_rows:
        return None
    shown = ", ".join(str(r) for r in table.invalid_rows[:limit])
    more = f" (+{len(table.invalid_rows) - limit} more)" if len(table.invalid_rows) > limit else ""
    return (f"{table.source}: skipped {len(table.invalid_rows)} row(s) with an invalid SMILES, sequence or "
            f"value at row(s) {shown}{more}")


#: what each cold split holds out whole, as reports name it
COLD_UNITS = {"cold_drug": "compounds", "cold_protein": "proteins"}


def cold_groups(table: InteractionTable, split: str) -> np.ndarray | None:
    """Per pair, the compound (cold_drug) or protein (cold_protein) index a cold split holds out whole;
    None for a random split."""
    return {"cold_drug": table.drug, "cold_protein": table.protein}.get(split)
