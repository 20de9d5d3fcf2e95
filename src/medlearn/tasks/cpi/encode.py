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


def fit_kmer_projection(features: np.ndarray, n_components: int = 256) -> dict[str, np.ndarray]:
    """Standardise k-mer features ``(P, K)`` and fit their top principal components (Pearson 1901).

    Fitted on the training proteins only (unsupervised). Returns ``mean`` / ``std`` ``(K,)``,
    ``components`` ``(K, k)`` with ``k = min(n_components, P - 1, K)`` (at least 1) and ``scale``
    ``()`` (standard deviation of the first component) so the projected features are O(1).
    """
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or len(X) < 1:
        raise ValueError(f"need a (P, K) feature matrix with P >= 1, got shape {X.shape}")
    mean = X.mean(0)
    std = X.std(0) + 1e-6
    Z = (X - mean) / std
    k = max(1, min(n_components, len(X) - 1, X.shape[1]))
    _, _, vt = np.linalg.svd(Z - Z.mean(0), full_matrices=False)
    components = vt[:k].T  # (K, k)
    first = (Z @ components[:, 0]).std()
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "components": components.astype(np.float32), "scale": np.float32(first + 1e-6)}


def apply_kmer_projection(features: np.ndarray, projection: dict[str, np.ndarray]) -> np.ndarray:
    """``(P, K)`` k-mer features -> ``(P, k)`` float32 principal-component scores (see ``fit_kmer_projection``)."""
    Z = (np.asarray(features, dtype=np.float32) - projection["mean"]) / projection["std"]
    return (Z @ projection["components"] / projection["scale"]).astype(np.float32)
