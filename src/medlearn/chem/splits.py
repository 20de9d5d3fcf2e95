"""Train/val/test splits for molecule tables: random, balanced Bemis-Murcko scaffold, stratified, file.

All functions return a dict ``{"train": idx, "val": idx, "test": idx}`` of positions into the table
(0..N-1). Sizes follow the shared protocol (``shared/benchmarks/qsar/splits/README.md``):
n_train = floor(8n/10), n_val = floor(9n/10) - n_train, n_test = the rest (for the default 0.8/0.1/0.1).

Scaffold split: Bemis & Murcko, J. Med. Chem. 1996; "balanced" variant as in chemprop v1
(Yang et al., J. Chem. Inf. Model. 2019): big scaffold groups go to train first, the small ones are
shuffled and fill train, then val, then test. No scaffold is shared between sets.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from medlearn.chem.data import MoleculeTable
from medlearn.errors import InputError

SPLIT_KINDS = ("random", "scaffold", "stratified")


def split_sizes(n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError("--split-sizes", f"fractions {fractions} must be three non-negative numbers summing to 1")
    if fractions == (0.8, 0.1, 0.1):
        n_train = (8 * n) // 10
        n_val = (9 * n) // 10 - n_train
    else:
        n_train = int(np.floor(fractions[0] * n))
        n_val = int(np.floor((fractions[0] + fractions[1]) * n)) - n_train
    return n_train, n_val, n - n_train - n_val


def random_split(n: int, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    n_train, n_val, _ = split_sizes(n, fractions)
    perm = np.random.RandomState(seed).permutation(n)
    return {"train": np.sort(perm[:n_train]), "val": np.sort(perm[n_train:n_train + n_val]),
            "test": np.sort(perm[n_train + n_val:])}


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES without chirality; "" for acyclic molecules."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return ""
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    finally:
        RDLogger.EnableLog("rdApp.*")


def scaffold_split(smiles: list[str], seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Balanced scaffold split (see module docstring); deterministic for a seed."""
    n = len(smiles)
    n_train, n_val, n_test = split_sizes(n, fractions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    limit = min(n_val, n_test)
    big = [g for g in groups.values() if 2 * len(g) > limit]
    small = [g for g in groups.values() if 2 * len(g) <= limit]
    big.sort(key=lambda g: (-len(g), g[0]))
    small.sort(key=lambda g: g[0])
    order = big + [small[i] for i in np.random.RandomState(seed).permutation(len(small))]
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for g in order:
        if len(train) + len(g) <= n_train:
            train.extend(g)
        elif len(val) + len(g) <= n_val:
            val.extend(g)
        else:
            test.extend(g)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def stratified_split(y: np.ndarray, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Keep the label distribution of the first task in each set.

    Classification: strata are the class labels (missing labels form their own stratum).
    Regression: strata are quantile bins of the value. ``y`` is ``(N,)`` or ``(N, T)``.
    """
    y = np.asarray(y, dtype=float)
    first = y if y.ndim == 1 else y[:, 0]
    n = len(first)
    n_train, n_val, _ = split_sizes(n, fractions)
    obs = ~np.isnan(first)
    if obs.any() and np.isin(first[obs], (0.0, 1.0)).all():
        strata = np.where(obs, first, -1.0)
    else:
        n_bins = max(1, min(10, n // 10))
        edges = np.nanquantile(first, np.linspace(0, 1, n_bins + 1)[1:-1]) if obs.any() else []
        strata = np.where(obs, np.searchsorted(edges, np.nan_to_num(first)), -1)
    rng = np.random.RandomState(seed)
    # Interleave the strata so any prefix of the order has (nearly) the overall class proportions.
    keyed = []
    for s in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == s))
        positions = (np.arange(len(members)) + rng.uniform()) / len(members)
        keyed.extend(zip(positions, members, strict=True))
    keyed.sort()
    order = np.array([m for _, m in keyed], dtype=int)
    return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def read_split_file(path: str | Path, table: MoleculeTable) -> dict[str, np.ndarray]:
    """A split JSON in the shared format (CSV row indices under train/val/test) -> table positions."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read split file ({exc})", "give a JSON with train/val/test row lists") from exc
    missing = [k for k in ("train", "val", "test") if k not in data]
    if missing:
        raise InputError(path, f"split file lacks {', '.join(missing)}", "it needs train, val and test row lists")
    return {k: table.positions_of_rows(data[k], what=f"split file {path.name} ({k})") for k in ("train", "val", "test")}


def make_split(table: MoleculeTable, kind: str, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """``kind`` is random | scaffold | stratified | a path to a split JSON."""
    if kind == "random":
        return random_split(len(table), seed, fractions)
    if kind == "scaffold":
        return scaffold_split(table.smiles, seed, fractions)
    if kind == "stratified":
        return stratified_split(table.y, seed, fractions)
    if kind.endswith(".json") or Path(kind).is_file():
        return read_split_file(kind, table)
    raise InputError("--split", f"unknown split '{kind}'", f"use one of {', '.join(SPLIT_KINDS)} or a split .json file")


def split_to_rows(split: dict[str, np.ndarray], table: MoleculeTable) -> dict[str, list[int]]:
    """Positions -> CSV row numbers (the shared split-file format), for ``splits.json``."""
    return {k: [int(r) for r in table.rows[v]] for k, v in split.items()}
