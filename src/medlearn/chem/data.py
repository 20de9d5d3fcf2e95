"""Reading SMILES tables in the chemprop / DeepChem layout.

A CSV has one SMILES column and one or more target columns; an empty cell is a missing label
(masked in losses and metrics). Rows whose SMILES RDKit cannot parse are reported by row number and
skipped, never crash a run. Row numbers are pandas' 0-based row indices (as in the shared split files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medlearn.errors import InputError

TASK_TYPES = ("regression", "classification")


@dataclass
class MoleculeTable:
    """Valid molecules of a CSV with their labels.

    Attributes:
        smiles: ``(N,)`` stripped SMILES of the valid rows.
        rows: ``(N,)`` 0-based pandas row index of each valid molecule in the original CSV.
        y: ``(N, T)`` float labels, NaN where missing (or ``(N, 0)`` when no targets were asked).
        targets: the T target column names.
        invalid_rows: rows whose SMILES could not be parsed (skipped).
        source: the file it came from (for messages).
    """

    smiles: list[str]
    rows: np.ndarray
    y: np.ndarray
    targets: list[str]
    invalid_rows: list[int] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.smiles)

    def subset(self, idx: np.ndarray) -> MoleculeTable:
        """Positions ``idx`` (into this table, not CSV rows)."""
        idx = np.asarray(idx, dtype=int)
        return MoleculeTable([self.smiles[i] for i in idx], self.rows[idx], self.y[idx], list(self.targets),
                             [], self.source)

    def positions_of_rows(self, rows: list[int] | np.ndarray, what: str = "split") -> np.ndarray:
        """Map CSV row numbers to positions in this table; invalid rows are dropped silently."""
        lookup = {int(r): i for i, r in enumerate(self.rows)}
        out = []
        bad = set(self.invalid_rows)
        for r in rows:
            r = int(r)
            if r in lookup:
                out.append(lookup[r])
            elif r not in bad:
                raise InputError(self.source, f"{what} refers to row {r}, which is not in the table",
                                 "is the split file made for this CSV?")
        return np.asarray(out, dtype=int)


def infer_task_type(y: np.ndarray) -> str:
    """``classification`` when every observed label is 0 or 1, else ``regression``."""
    obs = y[~np.isnan(y)]
    if obs.size and np.isin(obs, (0.0, 1.0)).all():
        return "classification"
    return "regression"


def parse_smiles(smiles: str):
    """RDKit molecule or None (RDKit's parse warnings are silenced)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        return Chem.MolFromSmiles(smiles) if smiles else None
    finally:
        RDLogger.EnableLog("rdApp.*")


def numeric_column(df: pd.DataFrame, column: str, source: str, role: str, hint: str) -> np.ndarray:
    """``(N,)`` float64 values of ``df[column]``; empty cells -> NaN, any other non-number -> InputError."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(source, f"{role} column '{column}' has a non-numeric value {df[column].iloc[first]!r} "
                         f"(row {first})", hint)
    return values.to_numpy(dtype=np.float64)


def read_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found", "check the path")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(path, f"cannot read as CSV ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                         "give a comma-separated file with a header row") from exc


def guess_smiles_column(df: pd.DataFrame) -> str | None:
    for col in df.columns:
        if str(col).strip().lower() in ("smiles", "canonical_smiles", "smi", "mol", "molecule"):
            return col
    return None


def load_smiles_csv(path: str | Path, smiles_column: str | None = None,
                    target_columns: list[str] | None = None, require_targets: bool = True) -> MoleculeTable:
    """Read a SMILES CSV.

    Args:
        path: CSV file.
        smiles_column: name of the SMILES column (default: a column called ``smiles``, any case).
        target_columns: label columns (default: every numeric column other than the SMILES one
            when ``require_targets``; none otherwise).
        require_targets: raise when no target column is given or found.

    Raises:
        InputError: unreadable file, missing column, non-numeric target, no valid molecule.
    """
    df = read_csv(path)
    src = str(path)
    if smiles_column is None:
        smiles_column = guess_smiles_column(df)
        if smiles_column is None:
            raise InputError(src, "no SMILES column found",
                             f"pass --smiles COL (columns: {', '.join(map(str, df.columns))})")
    if smiles_column not in df.columns:
        raise InputError(src, f"no column '{smiles_column}'", f"columns are: {', '.join(map(str, df.columns))}")
    if target_columns is None:
        target_columns = []
        if require_targets:
            target_columns = [c for c in df.columns if c != smiles_column and pd.api.types.is_numeric_dtype(df[c])]
    missing = [c for c in target_columns if c not in df.columns]
    if missing:
        raise InputError(src, f"unknown target column(s) {', '.join(missing)}",
                         f"columns are: {', '.join(map(str, df.columns))}")
    if require_targets and not target_columns:
        raise InputError(src, "no target column", "pass --target COL (one or more)")
    y_all = np.empty((len(df), len(target_columns)), dtype=np.float64)
    for j, col in enumerate(target_columns):
        y_all[:, j] = numeric_column(df, col, src, "target",
                                     "labels must be numbers; leave a cell empty for a missing label")
    raw = df[smiles_column].astype("string").fillna("").str.strip().tolist()
    smiles, rows, invalid = [], [], []
    for i, s in enumerate(raw):
        if parse_smiles(s) is None:
            invalid.append(i)
        else:
            smiles.append(s)
            rows.append(i)
    if not smiles:
        raise InputError(src, f"no valid SMILES in column '{smiles_column}'", "is this the SMILES column?")
    rows_arr = np.asarray(rows, dtype=int)
    return MoleculeTable(smiles, rows_arr, y_all[rows_arr], list(target_columns), invalid, src)


def check_targets(table: MoleculeTable, task_type: str | None = None) -> None:
    """Refuse target columns nothing can be learnt from, naming the column: no value at all, an
    infinite value, or a single value in every labelled row (one class; a constant measurement).

    ``task_type`` "classification" also requires labels 0/1.
    """
    for j, name in enumerate(table.targets):
        values = table.y[:, j]
        labelled = values[~np.isnan(values)]
        if labelled.size == 0:
            raise InputError(table.source, f"target column '{name}' has no values (every cell is empty)",
                             "fill it or leave it out of --target")
        if np.isinf(labelled).any():
            row = int(table.rows[np.flatnonzero(np.isinf(values))[0]])
            raise InputError(table.source, f"target column '{name}' holds an infinite value (row {row})",
                             "replace it with a number or leave the cell empty (missing)")
        if task_type == "classification" and not np.isin(labelled, (0.0, 1.0)).all():
            bad = labelled[~np.isin(labelled, (0.0, 1.0))][0]
            raise InputError(table.source, f"target column '{name}' has the value {bad:g}; classification needs "
                             "labels 0/1", "use --task regression for a numeric target")
        unique = np.unique(labelled)
        if unique.size == 1:
            one_class = task_type == "classification" or (task_type is None and unique[0] in (0.0, 1.0))
            what = "one class only" if one_class else "a single value"
            raise InputError(table.source, f"target column '{name}' has {what} ({unique[0]:g} in all "
                             f"{labelled.size} labelled rows): there is nothing to learn",
                             "check the column, or leave it out of --target")


def describe_invalid(table: MoleculeTable, limit: int = 10) -> str | None:
    """One line naming the skipped rows, or None when every SMILES parsed."""
    if not table.invalid_rows:
        return None
    shown = ", ".join(str(r) for r in table.invalid_rows[:limit])
    more = f" (+{len(table.invalid_rows) - limit} more)" if len(table.invalid_rows) > limit else ""
    return f"{table.source}: skipped {len(table.invalid_rows)} invalid SMILES at row(s) {shown}{more}"
