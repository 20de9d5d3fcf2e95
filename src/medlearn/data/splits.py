"""Train/validation/test splits: fixed, stratified, grouped by patient; seeded and saveable.

Patient grouping is absolute: when patient ids are given no patient ever has images in two splits
(images of one patient are correlated; splitting them leaks the test set into training).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from medlearn.data.classification import SPLITS
from medlearn.errors import InputError
from medlearn.io import write_json


def assign_splits(labels: np.ndarray, groups: np.ndarray | None = None, fixed: np.ndarray | None = None,
                  val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Return a ``(N,)`` array of 'train'/'val'/'test'.

    ``fixed`` (from a ``split`` column or file) is kept where given; rows it leaves empty, and a
    missing val (or test) split, are filled by a stratified split of the train rows, grouped by
    ``groups`` when given. ``labels``: ``(N,)`` class indices or ``(N, K)`` multi-label (stratified
    on the first label).
    """
    n = len(labels)
    strat = _stratification_key(labels)
    splits = np.full(n, "", dtype=object) if fixed is None else np.asarray(fixed, dtype=object).copy()
    free = splits == ""
    if free.all():
        if test_fraction > 0:
            splits[:] = "train"
            test = _holdout(np.arange(n), strat, groups, test_fraction, seed)
            splits[test] = "test"
        else:
            splits[:] = "train"
    else:
        splits[free] = "train"
    if not (splits == "val").any() and val_fraction > 0:
        pool = np.flatnonzero(splits == "train")
        test_made_here = not (fixed is not None and (fixed == "test").any())
        share = val_fraction / max(1e-9, 1 - (test_fraction if test_made_here else 0))
        val = _holdout(pool, strat[pool], None if groups is None else groups[pool], min(share, 0.5), seed + 1)
        splits[pool[val]] = "val"
    return splits.astype(str)


def _holdout(index: np.ndarray, strat: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int) -> np.ndarray:
    """Positions (into ``index``) of a stratified (and grouped) holdout of about ``fraction``."""
    n_splits = max(2, int(round(1 / fraction)))
    n_classes_min = np.bincount(np.unique(strat, return_inverse=True)[1]).min()
    dummy = np.zeros(len(index))
    if groups is not None:
        n_groups = len(np.unique(groups))
        n_splits = min(n_splits, n_groups)
        if n_splits < 2:
            raise InputError("split", "need at least 2 patients to make a split")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, hold = next(splitter.split(dummy, strat, groups))
        return hold
    if n_classes_min < n_splits:  # too few of some class to stratify: plain shuffle
        rng = np.random.default_rng(seed)
        return rng.permutation(len(index))[: max(1, int(round(fraction * len(index))))]
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, hold = next(splitter.split(dummy, strat))
    return hold


def _stratification_key(labels: np.ndarray) -> np.ndarray:
    if labels.ndim == 2:
        first = np.nan_to_num(labels[:, 0], nan=-1)
        return first.astype(int)
    return labels.astype(int)


def check_grouping(splits: np.ndarray, groups: np.ndarray | None, source: str = "split") -> None:
    """Raise if any patient appears in two splits (``source`` names the dataset in the message)."""
    if groups is None:
        return
    seen: dict[str, str] = {}
    for g, s in zip(groups, splits, strict=True):
        if seen.setdefault(g, s) != s:
            raise InputError(source, f"patient '{g}' is in both '{seen[g]}' and '{s}'",
                             "give each patient a single split")


def load_split_file(path: str | Path, ids: list[str]) -> np.ndarray:
    """Read ``{"train": [...], "val": [...], "test": [...]}`` of ids or 0-based row indices."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read split file ({exc})") from exc
    out = np.full(len(ids), "", dtype=object)
    position = {name: i for i, name in enumerate(ids)}
    for split in SPLITS:
        for item in spec.get(split, []):
            idx = item if isinstance(item, int) else position.get(str(item))
            if idx is None or not 0 <= idx < len(ids):
                raise InputError(path, f"'{split}' names '{item}', which is not in the dataset")
            out[idx] = split
    return out.astype(str)


def save_splits(path: str | Path, splits: np.ndarray, ids: list[str], seed: int) -> None:
    write_json(path, {"seed": seed, **{s: [ids[i] for i in np.flatnonzero(splits == s)] for s in SPLITS}})
