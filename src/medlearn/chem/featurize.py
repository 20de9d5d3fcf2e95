"""RDKit featurisation: Morgan/ECFP bits and counts, RDKit 2D descriptors, with an on-disk cache.

Every featuriser maps a list of N SMILES to a float32 array ``(N, D)``. Descriptors come raw (NaN/inf
replaced by NaN); :class:`DescriptorScaler` normalises them with statistics fitted on training rows
(a CDF / quantile normalisation in the spirit of chemprop's ``rdkit_2d_normalized``).

Morgan fingerprints: Rogers & Hahn, "Extended-connectivity fingerprints", J. Chem. Inf. Model. 2010.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from medlearn.errors import InputError

FEATURE_NAMES = ("morgan", "morgan_count", "rdkit2d")


@dataclass(frozen=True)
class FeatureSpec:
    """Which features, e.g. ``FeatureSpec(("morgan_count", "rdkit2d"), radius=2, n_bits=2048)``."""

    kinds: tuple[str, ...] = ("morgan",)
    radius: int = 2
    n_bits: int = 2048

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in FEATURE_NAMES]
        if unknown:
            raise InputError("--features", f"unknown feature kind(s) {unknown}", f"choose from {FEATURE_NAMES}")
        if self.radius < 0 or self.n_bits < 8:
            raise InputError("--features", f"radius={self.radius}, n_bits={self.n_bits} are out of range",
                             "use radius >= 0 and n_bits >= 8")

    @classmethod
    def parse(cls, text: str, radius: int = 2, n_bits: int = 2048) -> FeatureSpec:
        """``"morgan_count+rdkit2d"`` -> FeatureSpec."""
        return cls(tuple(k.strip() for k in text.split("+") if k.strip()), radius, n_bits)

    def key(self) -> str:
        return f"{'+'.join(self.kinds)}-r{self.radius}-b{self.n_bits}"

    def descriptor_slice(self) -> slice | None:
        """Columns of the concatenated array that hold RDKit descriptors (need normalising)."""
        start = 0
        for k in self.kinds:
            width = n_descriptors() if k == "rdkit2d" else self.n_bits
            if k == "rdkit2d":
                return slice(start, start + width)
            start += width
        return None


def _mols(smiles: Sequence[str]):
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        return [Chem.MolFromSmiles(s) for s in smiles]
    finally:
        RDLogger.EnableLog("rdApp.*")


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048, counts: bool = False,
                        mols: list | None = None) -> np.ndarray:
    """ECFP-style Morgan fingerprints ``(N, n_bits)`` float32 (bits in {0,1} or occurrence counts).

    An unparsable SMILES gives a row of zeros (callers drop invalid rows before this).
    """
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    mols = _mols(smiles) if mols is None else mols
    out = np.zeros((len(mols), n_bits), dtype=np.float32)
    get = gen.GetCountFingerprintAsNumPy if counts else gen.GetFingerprintAsNumPy
    for i, m in enumerate(mols):
        if m is not None:
            out[i] = get(m)
    return out


def descriptor_names() -> list[str]:
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors._descList]


def n_descriptors() -> int:
    return len(descriptor_names())


def rdkit_descriptors(smiles: Sequence[str], mols: list | None = None) -> np.ndarray:
    """All RDKit 2D descriptors (``Descriptors._descList``), ``(N, ~217)`` float32, non-finite -> NaN."""
    from rdkit import RDLogger
    from rdkit.Chem import Descriptors

    funcs = [f for _, f in Descriptors._descList]
    mols = _mols(smiles) if mols is None else mols
    out = np.full((len(mols), len(funcs)), np.nan, dtype=np.float64)
    RDLogger.DisableLog("rdApp.*")
    try:
        for i, m in enumerate(mols):
            if m is None:
                continue
            for j, f in enumerate(funcs):
                try:
                    out[i, j] = f(m)
                except Exception:  # noqa: BLE001 - a few descriptors fail on exotic molecules
                    pass
    finally:
        RDLogger.EnableLog("rdApp.*")
    out[~np.isfinite(out)] = np.nan
    # float32 overflows for a few descriptors (Ipc); a signed log keeps order and magnitude.
    big = np.abs(out) > 1e6
    out[big] = np.sign(out[big]) * (6 + np.log10(np.abs(out[big]) / 1e6 + 1))
    return out.astype(np.float32)


def cache_dir() -> Path:
    """``$MEDLEARN_CACHE/chem`` (default ``~/.cache/medlearn/chem``)."""
    root = os.environ.get("MEDLEARN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "medlearn")
    return Path(root) / "chem"


def _cache_key(kind: str, smiles: Sequence[str], radius: int, n_bits: int) -> str:
    from rdkit import __version__ as rdkit_version

    h = hashlib.sha256()
    h.update(f"{kind}|{radius}|{n_bits}|{rdkit_version}|v1\n".encode())
    for s in smiles:
        h.update(s.encode())
        h.update(b"\n")
    return f"{kind}-{h.hexdigest()[:24]}"


def _cached(kind: str, smiles: Sequence[str], radius: int, n_bits: int, compute: Callable[[], np.ndarray],
            use_cache: bool) -> np.ndarray:
    if not use_cache:
        return compute()
    path = cache_dir() / f"{_cache_key(kind, smiles, radius, n_bits)}.npy"
    if path.exists():
        try:
            arr = np.load(path)
            if arr.shape[0] == len(smiles):
                return arr
        except (OSError, ValueError):
            pass
    arr = compute()
    try:
        from medlearn.io import atomic_path

        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, arr)
    except OSError:
        pass  # a read-only cache must not stop featurisation
    return arr


def featurize(smiles: Sequence[str], spec: FeatureSpec = FeatureSpec(), use_cache: bool = True) -> np.ndarray:
    """Concatenate the features of ``spec`` for each SMILES: ``(N, D)`` float32.

    Results are cached on disk per (kind, parameters, RDKit version, exact SMILES list).
    """
    smiles = list(smiles)
    parts = []
    mols_holder: list = []

    def mols():
        if not mols_holder:
            mols_holder.append(_mols(smiles))
        return mols_holder[0]

    for kind in spec.kinds:
        if kind == "morgan":
            arr = _cached(kind, smiles, spec.radius, spec.n_bits,
                          lambda: morgan_fingerprints(smiles, spec.radius, spec.n_bits, False, mols()), use_cache)
        elif kind == "morgan_count":
            arr = _cached(kind, smiles, spec.radius, spec.n_bits,
                          lambda: morgan_fingerprints(smiles, spec.radius, spec.n_bits, True, mols()), use_cache)
        else:
            arr = _cached(kind, smiles, 0, 0, lambda: rdkit_descriptors(smiles, mols()), use_cache)
        parts.append(arr)
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


class DescriptorScaler(TransformerMixin, BaseEstimator):
    """Normalise descriptor columns: median-impute NaN, then a quantile (CDF) map to N(0, 1), clipped.

    ``columns`` (a slice or None = all) limits the transform to the descriptor block of a
    concatenated feature array; other columns pass through unchanged. Shapes: ``(N, D) -> (N, D)``.
    """

    def __init__(self, columns: slice | None = None, clip: float = 5.0, n_quantiles: int = 1000) -> None:
        self.columns = columns
        self.clip = clip
        self.n_quantiles = n_quantiles

    def fit(self, X: np.ndarray, y=None) -> DescriptorScaler:
        from sklearn.preprocessing import QuantileTransformer

        block = np.asarray(X, dtype=np.float64)[:, self._cols(X)]
        med = np.nanmedian(np.where(np.isnan(block).all(0, keepdims=True), 0.0, block), axis=0)
        self.median_ = np.nan_to_num(med)
        block = np.where(np.isnan(block), self.median_, block)
        self.quantile_ = QuantileTransformer(n_quantiles=min(self.n_quantiles, len(block)),
                                             output_distribution="normal", subsample=100_000, random_state=0)
        self.quantile_.fit(block)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float32, copy=True)
        cols = self._cols(X)
        block = X[:, cols].astype(np.float64)
        block = np.where(np.isnan(block), self.median_, block)
        X[:, cols] = np.clip(self.quantile_.transform(block), -self.clip, self.clip)
        return X

    def _cols(self, X) -> slice:
        return self.columns if self.columns is not None else slice(0, np.asarray(X).shape[1])


def tanimoto_max_similarity(query_fp: np.ndarray, reference_fp: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Max Tanimoto similarity of each query to the reference set (applicability domain).

    Args:
        query_fp: ``(Q, B)`` binary fingerprints.
        reference_fp: ``(R, B)`` binary fingerprints (e.g. the training set).
    Returns:
        ``(Q,)`` values in [0, 1]; 1 means the molecule (or its bit pattern) is in the reference set.
    """
    q = (np.asarray(query_fp) > 0).astype(np.float32)
    r = (np.asarray(reference_fp) > 0).astype(np.float32)
    r_sum = r.sum(1)
    out = np.zeros(len(q), dtype=np.float32)
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        inter = qs @ r.T
        union = qs.sum(1, keepdims=True) + r_sum[None, :] - inter
        sim = np.where(union > 0, inter / np.maximum(union, 1e-9), 1.0)
        out[s:s + chunk] = sim.max(1)
    return out
