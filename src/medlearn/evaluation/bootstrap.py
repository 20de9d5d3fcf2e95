"""Percentile bootstrap confidence intervals (Efron 1979; Efron & Tibshirani 1993, ch. 13).

Two ways in:

* :func:`bootstrap_ci` / :func:`metric_with_ci` take any ``metric_fn(*arrays) -> float`` and call it
  on each resample (simple, general, one Python call per resample).
* :func:`bootstrap_counts` gives the resamples as a ``(n_boot, N)`` matrix of multiplicities, so a
  metric written in terms of weighted sums (AUC, confusion matrices, ECE) is computed for all
  resamples at once; :mod:`medlearn.evaluation.classification` does this.

With ``groups`` (e.g. patient ids) whole groups are resampled with replacement, keeping the
correlation of images from one patient inside each resample (cluster bootstrap; Field & Welsh 2007).
Resamples on which the metric is undefined (NaN, e.g. only one class drawn, or an exception
raised) are skipped; if none is valid the interval is ``(nan, nan)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_CI_UNITS", "bootstrap_ci", "bootstrap_counts", "bootstrap_indices", "ci_entry", "count_chunks",
           "metric_with_ci", "nanmean", "percentile_interval"]

# resamples are drawn in chunks so the (chunk, N) multiplicity matrices stay around 32 MB
CHUNK_ELEMENTS = 4_000_000

#: Fewer resampling units (cases, patients, molecules) than this: a CI is reported as not estimable.
#: The percentile bootstrap of 3 cases can only ever return the few values their subsets take
#: (e.g. AUC [1.000, 1.000]), which reads as certainty where there is none.
MIN_CI_UNITS = 10


def ci_entry(value: float | None, resampled: np.ndarray | None, n_units: int, alpha: float = 0.05,
             undefined: str | None = None) -> dict[str, Any]:
    """One metric in the shape every ``metrics.json`` uses: ``{"value", "ci95": [lo, hi]}``.

    ``resampled``: the metric on each bootstrap resample (NaN = undefined there), or None when no
    bootstrap was asked (``ci95`` None). A CI from fewer than :data:`MIN_CI_UNITS` units, or when the
    metric is undefined on the data (``undefined`` says why, e.g. "one class present"), is None with
    ``ci_note`` saying why, so reports and the terminal show it as not estimable.
    """
    value = None if value is None or not math.isfinite(float(value)) else float(value)
    entry: dict[str, Any] = {"value": value, "ci95": None}
    if resampled is None:
        return entry
    if value is None:
        entry["ci_note"] = f"not estimable: {undefined or 'the metric is undefined on these data'}"
        return entry
    if n_units < MIN_CI_UNITS:
        entry["ci_note"] = f"not estimable: {n_units} unit(s), a CI needs at least {MIN_CI_UNITS}"
        return entry
    finite = np.asarray(resampled, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size < 0.5 * np.asarray(resampled).size:
        entry["ci_note"] = "not estimable: the metric is undefined on most resamples"
        return entry
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    entry["ci95"] = [float(lo), float(hi)]
    return entry


def _group_codes(groups: Sequence[Any] | np.ndarray, n: int) -> tuple[np.ndarray, int]:
    groups = np.asarray(groups)
    if groups.shape[0] != n:
        raise ValueError(f"groups has {groups.shape[0]} entries but the arrays have {n} rows")
    _, codes = np.unique(groups, return_inverse=True)
    codes = codes.reshape(-1)
    return codes, int(codes.max()) + 1 if n else 0


def bootstrap_indices(
    n: int, n_boot: int = 1000, seed: int = 0, groups: Sequence[Any] | np.ndarray | None = None
) -> list[np.ndarray]:
    """Row indices of each resample.

    Without ``groups``: ``n_boot`` arrays of ``n`` indices drawn with replacement. With ``groups``:
    as many groups as there are drawn with replacement and all their rows taken, so the resample
    sizes vary.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return list(rng.integers(0, n, size=(n_boot, n)))
    codes, n_groups = _group_codes(groups, n)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_groups + 1))
    members = [order[starts[g] : starts[g + 1]] for g in range(n_groups)]
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    return [np.concatenate([members[g] for g in draw]) for draw in draws]


def bootstrap_counts(
    n: int, n_boot: int = 1000, seed: int = 0, groups: Sequence[Any] | np.ndarray | None = None
) -> np.ndarray:
    """Multiplicity of each row in each resample, shape ``(n_boot, n)`` (float64).

    Row ``b`` says how many times each of the ``n`` rows was drawn in resample ``b``; a metric
    defined by weighted sums evaluates all resamples at once with these as weights. Uses the same
    random stream as :func:`bootstrap_indices` for equal arguments.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = rng.integers(0, n, size=(n_boot, n))
        offsets = (np.arange(n_boot) * n)[:, None]
        flat = np.bincount((draws + offsets).ravel(), minlength=n_boot * n)
        return flat.reshape(n_boot, n).astype(np.float64)
    codes, n_groups = _group_codes(groups, n)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    offsets = (np.arange(n_boot) * n_groups)[:, None]
    group_counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    return group_counts[:, codes].astype(np.float64)


def count_chunks(n: int, n_boot: int, seed: int, groups: Sequence[Any] | np.ndarray | None = None,
                 width: int = 1) -> Any:
    """``(B_chunk, n)`` multiplicity matrices adding up to ``n_boot`` resamples (chunk ``c`` seeded ``seed + c``),
    each about :data:`CHUNK_ELEMENTS` elements (``width``: columns computed per row, e.g. labels)."""
    size = max(1, CHUNK_ELEMENTS // max(n * width, 1))
    for c, start in enumerate(range(0, n_boot, size)):
        yield bootstrap_counts(n, min(size, n_boot - start), seed + c, groups)


def nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the finite entries along ``axis`` (NaN where there are none), without warnings."""
    finite = np.isfinite(x)
    count = finite.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(finite, x, 0.0).sum(axis=axis) / count
    return np.where(count > 0, out, np.nan)


def percentile_interval(values: Sequence[float] | np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The ``(alpha/2, 1-alpha/2)`` percentiles of the finite ``values``; ``(nan, nan)`` if none.

    ``values`` may be ``(n_boot,)`` or ``(n_boot, ...)``; for the latter use
    :func:`numpy.nanpercentile` directly.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    vals = np.asarray(values, dtype=np.float64).ravel()
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(lo), float(hi))


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` confidence interval of ``metric_fn(*arrays)``.

    Args:
        metric_fn: called as ``metric_fn(*[a[idx] for a in arrays])`` for each resample; returns a
            float (NaN or an exception = undefined on that resample, which is skipped).
        arrays: arrays with the same first dimension ``N`` (rows are resampled together).
        n_boot: number of resamples.
        alpha: 0.05 gives a 95% interval.
        seed: seed of the resampling (deterministic for equal arguments).
        groups: optional ``(N,)`` group labels (e.g. patient ids); whole groups are resampled.

    Returns:
        ``(lo, hi)``, or ``(nan, nan)`` when no resample gives a finite value.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0]
    for a in arrs[1:]:
        if a.shape[0] != n:
            raise ValueError(f"arrays have different numbers of rows: {[x.shape[0] for x in arrs]}")
    if n == 0 or n_boot <= 0:
        return (math.nan, math.nan)
    values = np.full(n_boot, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. sklearn's "only one class present" on a resample
        for b, idx in enumerate(bootstrap_indices(n, n_boot, seed, groups)):
            try:
                values[b] = float(metric_fn(*[a[idx] for a in arrs]))
            except (ValueError, ZeroDivisionError, FloatingPointError):
                continue
    return percentile_interval(values, alpha)


def metric_with_ci(
    metric_fn: Callable[..., float],
    *arrays: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """``{"value": metric_fn(*arrays), "ci95": [lo, hi]}``; ``ci95`` is None when ``n_boot == 0``.

    The key is ``ci95`` whatever ``alpha`` is, so reports read the same; a non-default ``alpha`` is
    the caller's to state.
    """
    try:
        value = float(metric_fn(*[np.asarray(a) for a in arrays]))
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if n_boot <= 0:
        return {"value": value, "ci95": None}
    lo, hi = bootstrap_ci(metric_fn, *arrays, n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
    return {"value": value, "ci95": [lo, hi]}
