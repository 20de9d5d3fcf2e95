"""Splitting molecule tables: Bemis-Murcko scaffolds and value strata, cut by the one split service.

The algorithms live in :mod:`medlearn.data.splits`; this module only says what a molecule is grouped
or stratified by, and reads the shared split files. Every split is a
:class:`~medlearn.data.splits.Splits` over the table's CSV row numbers, with the shared protocol's sizes
(``shared/benchmarks/qsar/splits/README.md``): n_train = floor(8n/10), n_val = floor(9n/10) - n_train,
n_test = the rest, n the valid molecules.

* ``random``: a seeded permutation (:func:`~medlearn.data.splits.random_fractions`);
* ``scaffold``: whole Bemis-Murcko scaffolds per split (Bemis & Murcko, J. Med. Chem. 1996), the
  balanced variant of chemprop v1 (Yang et al., J. Chem. Inf. Model. 2019;
  :func:`~medlearn.data.splits.balanced_groups`); no scaffold is in two splits;
* ``stratified``: the first target's classes (or its quantile bins) in every split
  (:func:`~medlearn.data.splits.stratified_interleaved`);
* a JSON file of CSV row numbers under ``train`` / ``val`` / ``test`` (the shared split files, whose
  other keys describe the file); rows dropped as invalid SMILES may be listed and are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.chem.data import MoleculeTable, parse_smiles
from medlearn.data.splits import (
    DEFAULT_FRACTIONS,
    Splits,
    balanced_groups,
    random_fractions,
    read_split_file,
    stratified_interleaved,
)
from medlearn.errors import InputError

SPLIT_KINDS = ("random", "scaffold", "stratified")


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES without chirality; "" for acyclic (or unparsable) molecules."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = parse_smiles(smiles)
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(smiles: Sequence[str], seed: int = 0,
                   fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Balanced scaffold split: positions per split, no scaffold shared between splits."""
    return balanced_groups([murcko_scaffold(s) for s in smiles], seed, fractions)


def value_strata(y: np.ndarray) -> np.ndarray:
    """``(N,)`` stratum of each molecule from its first target: the class (0/1) for classification
    labels, else one of up to 10 quantile bins; a missing label is a stratum of its own (-1)."""
    y = np.asarray(y, dtype=float)
    first = y if y.ndim == 1 else y[:, 0]
    obs = ~np.isnan(first)
    if obs.any() and np.isin(first[obs], (0.0, 1.0)).all():
        return np.where(obs, first, -1.0)
    n_bins = max(1, min(10, len(first) // 10))
    edges = np.nanquantile(first, np.linspace(0, 1, n_bins + 1)[1:-1]) if obs.any() else []
    return np.where(obs, np.searchsorted(edges, np.nan_to_num(first)), -1)


def read_molecule_split(path: str | Path, table: MoleculeTable, unit: str = "molecule") -> Splits:
    """A split JSON of CSV row numbers (the shared format) -> :class:`Splits` over ``table``'s rows.

    Rows the table dropped as invalid SMILES are skipped; any other unknown row, a missing split, or a
    row in two splits stops with one line naming the file.
    """
    return read_split_file(path, [int(r) for r in table.rows], unit, rows_only=True, dropped=set(table.invalid_rows))


def split_molecules(table: MoleculeTable, kind: str, seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                    unit: str = "molecule") -> Splits:
    """``kind`` is random | scaffold | stratified | a path to a split JSON; ids are CSV row numbers."""
    ids = [int(r) for r in table.rows]
    if kind == "random":
        parts = random_fractions(len(table), seed, fractions)
    elif kind == "scaffold":
        parts = scaffold_split(table.smiles, seed, fractions)
    elif kind == "stratified":
        parts = stratified_interleaved(value_strata(table.y), seed, fractions)
    elif kind.endswith(".json") or Path(kind).is_file():
        return read_molecule_split(kind, table, unit)
    else:
        raise InputError("--split", f"unknown split '{kind}'",
                         f"use one of {', '.join(SPLIT_KINDS)} or a split .json file")
    return Splits.from_parts(ids, parts, seed, unit)
