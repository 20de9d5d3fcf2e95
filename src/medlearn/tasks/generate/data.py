"""Generation data: the distinct molecules of a SMILES CSV (chemprop / MoleculeNet layout), and their
token sequences for the language model.

A training set is read once (:func:`load_molecules`): rows RDKit cannot parse are skipped and named,
the rest canonicalised and deduplicated (first occurrence kept), so novelty is measured against
molecules, not spellings. The split unit is a distinct molecule, identified by its first CSV row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlearn.chem.data import describe_invalid, load_smiles_csv
from medlearn.chem.properties import canonical_smiles
from medlearn.errors import InputError
from medlearn.tasks.generate.vocab import Vocabulary, to_sequence, tokenize


@dataclass
class MoleculeSet:
    """Distinct molecules of a CSV.

    ``smiles``: ``(M,)`` canonical SMILES in first-occurrence order; ``rows``: ``(M,)`` 0-based CSV row of
    each one's first occurrence; ``n_rows``: valid rows read (duplicates included); ``invalid_note``: the
    line naming skipped rows (or None); ``options``: the reading (and, for evaluation, sampling) options.
    """

    smiles: list[str]
    rows: np.ndarray
    source: str
    n_rows: int = 0
    invalid_rows: list[int] = field(default_factory=list)
    invalid_note: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _encoded: dict[tuple[str, int], tuple[list[list[str]], np.ndarray]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.smiles)

    def encoded(self, representation: str, max_len: int) -> tuple[list[list[str]], np.ndarray]:
        """Token lists of the molecules that encode within ``max_len`` tokens, and their positions
        ``(K,)`` in :attr:`smiles` (computed once per setting)."""
        key = (representation, max_len)
        if key not in self._encoded:
            self._encoded[key] = encode_molecules(self.smiles, representation, max_len)
        return self._encoded[key]


def load_molecules(source: str, options: dict[str, Any], min_molecules: int = 1) -> MoleculeSet:
    """Read ``source`` (``options["smiles_column"]``: the SMILES column, default a column named smiles)."""
    table = load_smiles_csv(source, options.get("smiles_column"), require_targets=False)
    first: dict[str, int] = {}
    for smiles, row in zip(table.smiles, table.rows, strict=True):
        key = canonical_smiles(smiles)
        if key is not None and key not in first:
            first[key] = int(row)
    if len(first) < min_molecules:
        raise InputError(source, f"{len(first)} distinct molecule(s); a generator needs at least {min_molecules}",
                         "give more molecules")
    return MoleculeSet(list(first), np.asarray(list(first.values()), dtype=int), str(source), len(table),
                       list(table.invalid_rows), describe_invalid(table), dict(options))


def encode_molecules(smiles: Sequence[str], representation: str, max_len: int
                     ) -> tuple[list[list[str]], np.ndarray]:
    """Token lists of the SMILES that encode (SELFIES may refuse a few) within ``max_len`` tokens, and the
    positions ``(K,)`` of those kept."""
    token_lists, kept = [], []
    for i, s in enumerate(smiles):
        seq = to_sequence(s, representation)
        if not seq:
            continue
        tokens = tokenize(seq, representation)
        if 0 < len(tokens) <= max_len:
            token_lists.append(tokens)
            kept.append(i)
    return token_lists, np.asarray(kept, dtype=int)


def token_ids(vocab: Vocabulary, token_lists: Sequence[Sequence[str]], max_len: int) -> np.ndarray:
    """``(K, max_len + 2)`` int64 BOS ... EOS id rows (padding 0)."""
    if not token_lists:
        return np.zeros((0, max_len + 2), dtype=np.int64)
    return np.stack([vocab.encode(t, max_len) for t in token_lists])
