"""QSAR data: a SMILES CSV read for training (targets checked) or evaluation (the model's targets), and
canonical-SMILES keys that tell which molecules a model has seen.

The CSV layout is chemprop's / DeepChem's (:func:`medlearn.chem.data.load_smiles_csv`): a SMILES column and
one or more target columns; an empty cell is a missing label; unparsable SMILES are reported by row and
skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlearn.chem.data import MoleculeTable, check_targets, describe_invalid, infer_task_type, load_smiles_csv
from medlearn.errors import InputError

TASK_TYPES = ("regression", "classification")


@dataclass
class QSARDataset:
    """A read table and what was decided about it: ``task_type``; ``seen`` caches, for evaluation, which
    molecules the model learnt from (``(N,)`` "train" / "val" / "")."""

    table: MoleculeTable
    task_type: str
    smiles_column: str
    seen: np.ndarray | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return self.table.source

    @property
    def y(self) -> np.ndarray:
        return self.table.y

    def __len__(self) -> int:
        return len(self.table)

    def invalid_warning(self) -> str | None:
        return describe_invalid(self.table)


def load_training_data(source: str, options: dict[str, Any]) -> QSARDataset:
    """The table to train on; targets nothing can be learnt from (empty, infinite, a single value or
    class) are refused naming the column. ``options``: ``smiles_column``, ``targets``, ``task_type``."""
    task_type = options.get("task_type")
    if task_type not in (None, *TASK_TYPES):
        raise InputError("--task", f"unknown task '{task_type}'", "use regression or classification")
    table = load_smiles_csv(source, options.get("smiles_column"), options.get("targets"))
    check_targets(table, task_type)
    return QSARDataset(table, task_type or infer_task_type(table.y), options.get("smiles_column") or "smiles")


def load_evaluation_data(source: str, options: dict[str, Any], smiles_column: str, targets: Sequence[str],
                         task_type: str) -> QSARDataset:
    """A labelled table holding the model's target columns (``options["smiles_column"]`` overrides the
    model's SMILES column)."""
    column = options.get("smiles_column") or smiles_column
    table = load_smiles_csv(source, column, list(targets))
    if task_type == "classification":
        labelled = table.y[~np.isnan(table.y)]
        if not np.isin(labelled, (0.0, 1.0)).all():
            raise InputError(source, "the model is a classifier but the targets are not 0/1",
                             "evaluate on data labelled like the training data")
    if not np.isfinite(table.y[~np.isnan(table.y)]).all():
        raise InputError(source, "a target holds an infinite value", "replace it or leave the cell empty")
    return QSARDataset(table, task_type, column)


def molecule_keys(smiles: Sequence[str]) -> list[str | None]:
    """A short hash (16 hex digits of SHA-256) of each molecule's canonical SMILES, None where unparsable:
    the same molecule written two ways gets one key, and the model file stores no structures."""
    from medlearn.chem.properties import canonical_smiles

    keys: list[str | None] = []
    for s in smiles:
        canonical = canonical_smiles(s)
        keys.append(None if canonical is None else hashlib.sha256(canonical.encode()).hexdigest()[:16])
    return keys
