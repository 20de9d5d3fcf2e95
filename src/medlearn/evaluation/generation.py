"""Distribution-learning metrics of a generative model, whatever it generates (as in GuacaMol, Brown et
al. 2019, and MOSES, Polykovskiy et al. 2020), with 95% bootstrap CIs over the generated samples.

A generated sample is described by its *key*: a canonical identity (for molecules the canonical
SMILES, :func:`medlearn.chem.properties.canonical_smiles`), or None when the sample is invalid.

* validity: valid samples / samples;
* uniqueness: distinct keys / valid samples;
* novelty: distinct keys absent from the reference (training) set / distinct keys;
* internal diversity: 1 - mean pairwise Tanimoto similarity of binary fingerprints (MOSES IntDiv1);
* Wasserstein-1 distances between generated and reference property distributions.

CIs (:func:`sample_fractions`): the samples are resampled with replacement (:func:`bootstrap_counts`).
Resampling *creates* duplicates, so recounting distinct keys on a resample would pull uniqueness far
below its value (a set of 2,000 distinct samples resamples to ~63% distinct). Each valid sample instead
contributes ``1 / m`` (``m``: how often its key occurs among the valid samples), so ``sum(1 / m)`` is the
distinct count and uniqueness and novelty become ratios of per-sample sums, resampled like validity
(the percentile bootstrap of a ratio estimator; Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from medlearn.evaluation.bootstrap import bootstrap_counts, ci_entry

__all__ = ["internal_diversity", "sample_fractions", "wasserstein_distances"]


def sample_fractions(keys: Sequence[Hashable | None], reference: Container[Hashable], n_boot: int = 1000,
                     seed: int = 0) -> dict[str, Any]:
    """Validity, uniqueness and novelty of ``(N,)`` sample keys (None = invalid) against ``reference``.

    Returns ``{"validity", "uniqueness", "novelty"}`` as ``{"value", "ci95"}`` entries (``ci95`` None with
    ``n_boot`` 0; not estimable with fewer than 10 (valid) samples) and the counts ``n_generated``,
    ``n_valid``, ``n_unique``, ``n_novel``.
    """
    n = len(keys)
    valid = np.array([k is not None for k in keys], dtype=bool)
    counts = Counter(k for k in keys if k is not None)
    inverse_multiplicity = np.array([1.0 / counts[k] if k is not None else 0.0 for k in keys])
    novel = np.array([k is not None and k not in reference for k in keys], dtype=bool)
    per_sample = {"valid": valid.astype(float), "distinct": inverse_multiplicity,
                  "novel": inverse_multiplicity * novel}
    totals = {k: float(v.sum()) for k, v in per_sample.items()}
    resampled: dict[str, np.ndarray] | None = None
    if n_boot > 0 and n:
        weights = bootstrap_counts(n, n_boot, seed)
        resampled = {k: weights @ v for k, v in per_sample.items()}
    n_valid = int(valid.sum())
    out: dict[str, Any] = {
        "validity": ci_entry(_ratio(totals["valid"], n), None if resampled is None else resampled["valid"] / n,
                             n, undefined="no samples"),
        "uniqueness": ci_entry(_ratio(totals["distinct"], totals["valid"]),
                               None if resampled is None else _ratios(resampled["distinct"], resampled["valid"]),
                               n_valid, undefined="no valid sample"),
        "novelty": ci_entry(_ratio(totals["novel"], totals["distinct"]),
                            None if resampled is None else _ratios(resampled["novel"], resampled["distinct"]),
                            n_valid, undefined="no valid sample"),
        "n_generated": n, "n_valid": n_valid, "n_unique": len(counts),
        "n_novel": sum(1 for k in counts if k not in reference)}
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)


def internal_diversity(fps: np.ndarray, max_items: int = 5000, seed: int = 0) -> float:
    """1 - mean Tanimoto similarity over the distinct pairs of ``(N, B)`` binary fingerprints (NaN for N < 2).

    Vectorised (``fps @ fps.T``); above ``max_items`` rows a seeded random subset is used.
    """
    x = (np.asarray(fps) > 0).astype(np.float32)
    if len(x) > max_items:
        x = x[np.random.default_rng(seed).choice(len(x), max_items, replace=False)]
    n = len(x)
    if n < 2:
        return float("nan")
    inter = x @ x.T
    counts = x.sum(1)
    union = counts[:, None] + counts[None, :] - inter
    sim = np.where(union > 0, inter / np.maximum(union, 1e-9), 1.0)
    off = ~np.eye(n, dtype=bool)
    return float(1.0 - sim[off].mean())


def wasserstein_distances(generated: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
                          ) -> dict[str, float]:
    """Wasserstein-1 distance per property between the finite values of two ``{name: (N,)}`` sets
    (NaN for a property without a finite value on either side)."""
    from scipy.stats import wasserstein_distance

    out = {}
    for name in generated:
        a, b = finite(generated[name]), finite(reference.get(name, np.zeros(0)))
        out[name] = float(wasserstein_distance(a, b)) if a.size and b.size else float("nan")
    return out


def finite(values: np.ndarray) -> np.ndarray:
    """The finite entries of ``values`` (1D)."""
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]
