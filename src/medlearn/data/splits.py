"""The one split service: which items train, which select (val) and which are held out (test).

Every task splits through here and writes the same ``splits.json``::

    {"format": "medlearn.splits/1", "seed": 0, "unit": "image",
     "train": [id, ...], "val": [...], "test": [...]}

(ids are the dataset's item names or row numbers). One seeded split is made once, saved with the
run and reused on ``--resume`` (as nnU-Net's ``splits_final.json``). Strategies:

* :func:`stratified_grouped` — stratified by label, grouped by patient (no patient in two splits:
  images of one patient are correlated, splitting them leaks the test set into training);
* :func:`random_fractions` — a seeded permutation cut at exact sizes (the shared QSAR protocol:
  n_train = floor(8n/10), n_val = floor(9n/10) - n_train, n_test = the rest);
* :func:`balanced_groups` — whole groups (e.g. Bemis-Murcko scaffolds) kept together, big groups
  to train first, small ones shuffled (chemprop v1's balanced scaffold split, Yang et al. 2019);
* :func:`stratified_interleaved` — any prefix of the order keeps the label proportions;
* :func:`read_split_file` — a user's (or the shared benchmarks') JSON of ids or 0-based rows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import InputError
from medlearn.io import write_json

SPLITS = ("train", "val", "test")
FORMAT = "medlearn.splits/1"
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass
class Splits:
    """A split of ``len(ids)`` items: ``assignment[i]`` is 'train', 'val', 'test' or '' (unused)."""

    ids: list[Any]
    assignment: np.ndarray
    seed: int = 0
    unit: str = "item"

    def __post_init__(self) -> None:
        self.assignment = np.asarray(self.assignment, dtype=object)
        if len(self.assignment) != len(self.ids):
            raise ValueError(f"{len(self.assignment)} split labels for {len(self.ids)} items")

    def mask(self, *names: str) -> np.ndarray:
        """``(N,)`` bool: items in any of the splits ``names``."""
        return np.isin(self.assignment, names)

    def indices(self, *names: str) -> np.ndarray:
        """Positions of the items in any of the splits ``names``."""
        return np.flatnonzero(self.mask(*names))

    def sizes(self) -> dict[str, int]:
        return {s: int((self.assignment == s).sum()) for s in SPLITS}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "seed": self.seed, "unit": self.unit,
                **{s: [_plain_id(self.ids[i]) for i in self.indices(s)] for s in SPLITS}}

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def from_parts(cls, ids: list[Any], parts: dict[str, np.ndarray], seed: int = 0, unit: str = "item",
                   source: str = "split") -> Splits:
        """From ``{"train": positions, "val": ..., "test": ...}``; a position in two parts is refused."""
        assignment = np.full(len(ids), "", dtype=object)
        for name in SPLITS:
            for i in np.asarray(parts.get(name, []), dtype=int):
                if assignment[i]:
                    raise InputError(source, f"item {_plain_id(ids[i])!r} is in both '{assignment[i]}' and '{name}'",
                                     "give each item one split")
                assignment[i] = name
        return cls(list(ids), assignment, seed, unit)

    @classmethod
    def load(cls, path: str | Path, ids: list[Any], unit: str = "item") -> Splits:
        """A saved ``splits.json`` (or any split file) matched to ``ids``."""
        return read_split_file(path, ids, unit=unit)


def _plain_id(item: Any) -> Any:
    return item.item() if isinstance(item, np.generic) else item


def read_split_file(path: str | Path, ids: Sequence[Any], unit: str = "item", rows_only: bool = False,
                    dropped: Collection[int] = ()) -> Splits:
    """Read ``{"train": [...], "val": [...], "test": [...]}`` of ids or 0-based row numbers.

    ``rows_only``: the shared QSAR split files — every split present, entries are row numbers of the source
    table (``ids`` are the rows a table kept), other keys are the file's description; rows in ``dropped``
    (e.g. invalid SMILES) may be named and are skipped. A list instead of a mapping, an unknown id or row,
    a misnamed split, or an id in two splits stops with one line naming the file.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read split file ({exc})", "give a JSON with train/val/test lists") from exc
    if not isinstance(spec, dict):
        raise InputError(path, f"a split file must be a mapping of train/val/test lists, got a {type(spec).__name__}",
                         'e.g. {"train": [...], "val": [...], "test": [...]}')
    if rows_only:
        missing = [k for k in SPLITS if k not in spec]
        if missing:
            raise InputError(path, f"split file lacks {', '.join(missing)}", "it needs train, val and test row lists")
    else:
        unknown = sorted(set(spec) - {*SPLITS, "format", "seed", "unit"})
        if unknown:
            raise InputError(path, f"unknown split name(s) {unknown}", "use train, val and test")
    by_name = {str(_plain_id(name)): i for i, name in enumerate(ids)}
    assignment = np.full(len(ids), "", dtype=object)
    for split in SPLITS:
        entries = spec.get(split, [])
        if not isinstance(entries, list):
            raise InputError(path, f"'{split}' must be a list of ids or row numbers")
        for item in entries:
            if rows_only:
                if not isinstance(item, int) or isinstance(item, bool):
                    raise InputError(path, f"'{split}' must be a list of CSV row numbers")
                idx = by_name.get(str(item))
                if idx is None and item in dropped:
                    continue  # a row the table dropped (e.g. an invalid SMILES)
                if idx is None:
                    raise InputError(path, f"'{split}' refers to row {item}, which is not in the table",
                                     "is the split file made for this CSV?")
            elif isinstance(item, int) and not isinstance(item, bool) and str(item) not in by_name:
                idx = item
            else:
                idx = by_name.get(str(item))
            if idx is None or not isinstance(idx, int) or not 0 <= idx < len(ids):
                raise InputError(path, f"'{split}' names {item!r}, which is not in the dataset",
                                 "is the split file made for this dataset?")
            if assignment[idx]:
                raise InputError(path, f"{item!r} is in both '{assignment[idx]}' and '{split}'",
                                 "give each item a single split")
            assignment[idx] = split
    seed = spec.get("seed", 0)
    return Splits(list(ids), assignment, seed if isinstance(seed, int) and not isinstance(seed, bool) else 0, unit)


# -- strategies ------------------------------------------------------------------------------------

def split_sizes(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> tuple[int, int, int]:
    """(train, val, test) sizes; the default fractions follow the shared QSAR protocol exactly."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError("split fractions", f"{fractions} must be three non-negative numbers summing to 1")
    if fractions == DEFAULT_FRACTIONS:
        n_train = (8 * n) // 10
        n_val = (9 * n) // 10 - n_train
    else:
        n_train = int(np.floor(fractions[0] * n))
        n_val = int(np.floor((fractions[0] + fractions[1]) * n)) - n_train
    return n_train, n_val, n - n_train - n_val


def random_fractions(n: int, seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """A seeded permutation cut at :func:`split_sizes` (sorted positions per split)."""
    n_train, n_val, _ = split_sizes(n, fractions)
    perm = np.random.RandomState(seed).permutation(n)
    return {"train": np.sort(perm[:n_train]), "val": np.sort(perm[n_train:n_train + n_val]),
            "test": np.sort(perm[n_train + n_val:])}


def balanced_groups(groups: Sequence[Any], seed: int = 0,
                    fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Whole groups per split: groups larger than half the smaller holdout go to train first (largest
    first), the rest are shuffled and fill train, then val, then test. No group is in two splits."""
    n = len(groups)
    n_train, n_val, n_test = split_sizes(n, fractions)
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    limit = min(n_val, n_test)
    big = sorted((g for g in members.values() if 2 * len(g) > limit), key=lambda g: (-len(g), g[0]))
    small = sorted((g for g in members.values() if 2 * len(g) <= limit), key=lambda g: g[0])
    order = big + [small[i] for i in np.random.RandomState(seed).permutation(len(small))]
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for g in order:
        if len(parts["train"]) + len(g) <= n_train:
            parts["train"].extend(g)
        elif len(parts["val"]) + len(g) <= n_val:
            parts["val"].extend(g)
        else:
            parts["test"].extend(g)
    return {k: np.sort(np.asarray(v, dtype=int)) for k, v in parts.items()}


def stratified_interleaved(strata: np.ndarray, seed: int = 0,
                           fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Cut one order in which the strata are interleaved, so every split keeps their proportions."""
    strata = np.asarray(strata)
    n_train, n_val, _ = split_sizes(len(strata), fractions)
    rng = np.random.RandomState(seed)
    keyed = []
    for s in np.unique(strata):
        chosen = rng.permutation(np.flatnonzero(strata == s))
        positions = (np.arange(len(chosen)) + rng.uniform()) / len(chosen)
        keyed.extend(zip(positions, chosen, strict=True))
    keyed.sort()
    order = np.array([m for _, m in keyed], dtype=int)
    return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def stratified_grouped(labels: np.ndarray, groups: np.ndarray | None = None, fixed: np.ndarray | None = None,
                       val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                       source: str = "split") -> np.ndarray:
    """``(N,)`` 'train'/'val'/'test': ``fixed`` kept where given (from a split column or file); free rows
    and a missing val (or test) split filled by a stratified, patient-grouped holdout of the train rows.

    ``labels``: ``(N,)`` class indices or ``(N, K)`` multi-label (stratified on the first label).
    """
    n = len(labels)
    strat = _stratification_key(labels)
    splits = np.full(n, "", dtype=object) if fixed is None else np.asarray(fixed, dtype=object).copy()
    free = splits == ""
    if free.all():
        splits[:] = "train"
        if test_fraction > 0:
            splits[_holdout(np.arange(n), strat, groups, test_fraction, seed, source)] = "test"
    else:
        splits[free] = "train"
    if not (splits == "val").any() and val_fraction > 0:
        pool = np.flatnonzero(splits == "train")
        test_made_here = not (fixed is not None and (np.asarray(fixed) == "test").any())
        share = val_fraction / max(1e-9, 1 - (test_fraction if test_made_here else 0))
        val = _holdout(pool, strat[pool], None if groups is None else groups[pool], min(share, 0.5), seed + 1, source)
        splits[pool[val]] = "val"
    check_grouping(splits, groups, source)
    return splits.astype(str)


def _holdout(index: np.ndarray, strat: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int,
             source: str) -> np.ndarray:
    """Positions (into ``index``) of a stratified (and grouped) holdout of about ``fraction``.

    Stratified k-fold needs as many members (patients) of each class as folds; with fewer, whole
    patients are drawn class by class (``fraction`` of each class's patients, at least one where a
    class has two), so a small cohort gets a split of the asked size instead of a library error.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n_splits = max(2, int(round(1 / fraction)))
    dummy = np.zeros(len(index))
    if groups is not None:
        unique_groups = np.unique(groups)
        if len(unique_groups) < 2:
            raise InputError(source, "need at least 2 patients to make a split", "add patients or give a split")
        first = {g: i for i, g in reversed(list(enumerate(groups)))}
        group_class = np.asarray([strat[first[g]] for g in unique_groups])
        if np.bincount(np.unique(group_class, return_inverse=True)[1]).min() >= n_splits:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            return next(splitter.split(dummy, strat, groups))[1]
        rng = np.random.default_rng(seed)
        held: list[Any] = []
        for c in np.unique(group_class):
            pool = unique_groups[group_class == c]
            k = int(round(fraction * len(pool)))
            k = max(k, 1) if len(pool) >= 2 else k
            held += list(rng.permutation(pool)[:k])
        if not held:
            held = [rng.choice(unique_groups)]
        return np.flatnonzero(np.isin(groups, held))
    n_classes_min = np.bincount(np.unique(strat, return_inverse=True)[1]).min()
    if n_classes_min < n_splits:  # too few of some class to stratify: plain shuffle
        rng = np.random.default_rng(seed)
        return rng.permutation(len(index))[: max(1, int(round(fraction * len(index))))]
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return next(splitter.split(dummy, strat))[1]


def _stratification_key(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return np.nan_to_num(labels[:, 0], nan=-1).astype(int)
    return labels.astype(int)


def check_grouping(splits: np.ndarray, groups: np.ndarray | None, source: str = "split") -> None:
    """Raise if any patient appears in two splits (``source`` names the dataset in the message)."""
    if groups is None:
        return
    seen: dict[str, str] = {}
    for g, s in zip(groups, splits, strict=True):
        if s and seen.setdefault(g, s) != s:
            raise InputError(source, f"patient '{g}' is in both '{seen[g]}' and '{s}'",
                             "give each patient a single split")
