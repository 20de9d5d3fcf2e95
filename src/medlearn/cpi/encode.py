"""Integer encodings of SMILES characters and protein residues (DeepDTA's label encoding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AMINO_ACIDS = "ACBEDGFIHKMLONQPSRUTWVYXZ"  # the 25 letters DeepDTA uses; others map to unknown


def smiles_alphabet(smiles: Sequence[str]) -> list[str]:
    """Sorted characters seen in ``smiles`` (index 0 = padding, 1 = unknown)."""
    return sorted({c for s in smiles for c in s})


def encode_strings(strings: Sequence[str], alphabet: Sequence[str], max_len: int) -> np.ndarray:
    """``(N, max_len)`` int64: 0 padding, 1 unknown character, 2.. the alphabet; truncated at ``max_len``."""
    index = {c: i + 2 for i, c in enumerate(alphabet)}
    out = np.zeros((len(strings), max_len), dtype=np.int64)
    for r, s in enumerate(strings):
        codes = [index.get(c, 1) for c in s[:max_len]]
        out[r, :len(codes)] = codes
    return out


STANDARD_AA = "ACDEFGHIKLMNPQRSTVWY"


def kmer_features(sequences: Sequence[str], k_max: int = 3) -> np.ndarray:
    """``(N, 20 + 400 + 8000)`` float32 k-mer frequencies (k = 1..k_max) over the 20 standard residues.

    Each block is the count of every k-mer divided by the number of k-mers in the sequence, scaled by
    ``sqrt(block size)`` so the blocks have comparable magnitude. Non-standard residues break k-mers.
    """
    index = {a: i for i, a in enumerate(STANDARD_AA)}
    blocks = []
    for k in range(1, k_max + 1):
        size = 20 ** k
        out = np.zeros((len(sequences), size), dtype=np.float32)
        powers = 20 ** np.arange(k - 1, -1, -1)
        for r, seq in enumerate(sequences):
            codes = np.array([index.get(c, -1) for c in seq], dtype=np.int64)
            if len(codes) < k:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(codes, k)
            windows = windows[(windows >= 0).all(1)]
            if len(windows):
                counts = np.bincount(windows @ powers, minlength=size)
                out[r] = counts / len(windows) * np.sqrt(size)
        blocks.append(out)
    return np.concatenate(blocks, axis=1)
