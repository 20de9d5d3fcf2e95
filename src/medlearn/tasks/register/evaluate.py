"""Score a model on pairs: register each at full resolution on its fixed grid, then the metrics of
:mod:`medlearn.evaluation.registration` per pair and their means with 95% bootstrap CIs over pairs.

Per pair: Dice and HD95 of the warped moving labels per structure (ids present in both maps), folding
(% voxels with ``det J <= 0``) and SDlogJ of the field, TRE in mm (keypoints; or a known field, over the
fixed mask, else the fixed labels' foreground, else every voxel), NCC and MI before and after, and the
seconds the registration took. The report's figures take slices of the first pairs (:class:`FigurePair`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.evaluation.registration import jacobian_determinant, pair_metrics, registration_metrics

if TYPE_CHECKING:
    from medlearn.tasks.register.dataset import RegistrationData
    from medlearn.tasks.register.model import Registrator

__all__ = ["FigurePair", "ScoredPairs", "score_pairs", "split_metrics"]

#: pairs whose slices the report draws
FIGURE_PAIRS = 3
#: per-pair scalars kept in metrics.json's ``per_pair`` rows
ROW_KEYS = ("dice", "dice_before", "hd95", "tre_mm", "tre_mm_before", "folding_percent", "std_log_jacobian",
            "ncc_before", "ncc_after", "mi_before", "mi_after", "seconds")


@dataclass
class FigurePair:
    """2D slices ``(X, Y)`` of one pair for the report (3D: the middle slice along the last axis)."""

    name: str
    fixed: np.ndarray
    moving: np.ndarray
    warped: np.ndarray
    jacobian: np.ndarray
    fixed_label: np.ndarray | None = None
    warped_label: np.ndarray | None = None


@dataclass
class ScoredPairs:
    per_pair: list[dict[str, Any]]
    method: str
    refine_steps: int
    figures: list[FigurePair] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)


def _slice(array: np.ndarray | None) -> np.ndarray | None:
    if array is None:
        return None
    a = np.asarray(array)
    a = a[0] if a.ndim in (3, 4) and a.shape[0] == 1 else a
    return a[..., a.shape[-1] // 2] if a.ndim == 3 else a


def _tre_mask(pair: Any) -> np.ndarray | None:
    if pair.fixed_mask is not None:
        return pair.fixed_mask[0]
    if pair.fixed_label is not None:
        return pair.fixed_label[0] > 0
    return None


def score_pairs(model: Registrator, data: RegistrationData, indices: list[int] | np.ndarray, method: str | None = None,
                refine: int | None = None) -> ScoredPairs:
    """Register and score the pairs at ``indices``; ``method``/``refine`` as :meth:`Registrator.register_pair`."""
    plan = model.plan_
    rows: list[dict[str, Any]] = []
    figures: list[FigurePair] = []
    used_method, used_steps = "network", 0
    for i in indices:
        pair = data.load(int(i))
        result = model.register_pair(pair, method=method, refine=refine)
        used_method, used_steps = result.method, result.refine_steps
        metrics = pair_metrics(pair.fixed.mean(0, keepdims=True), pair.moving.mean(0, keepdims=True),
                               result.warped.mean(0, keepdims=True), result.ddf,
                               fixed_label=pair.fixed_label, warped_label=result.warped_label,
                               moving_label=pair.moving_label, label_ids=pair.label_ids or None, spacing=pair.spacing,
                               fixed_points=pair.fixed_keypoints, moving_points=pair.moving_keypoints,
                               true_ddf=pair.known_ddf, mask=_tre_mask(pair) if pair.known_ddf is not None else None,
                               seconds=result.seconds, hd95=plan.evaluation.hd95)
        rows.append({"name": pair.name, **metrics})
        if len(figures) < FIGURE_PAIRS:
            figures.append(FigurePair(pair.name, _slice(pair.fixed.mean(0)), _slice(pair.moving.mean(0)),
                                      _slice(result.warped.mean(0)), _slice(jacobian_determinant(result.ddf)),
                                      _slice(pair.fixed_label), _slice(result.warped_label)))
    resampled = [data.summaries[int(i)].name for i in indices if data.summaries[int(i)].resampled]
    return ScoredPairs(rows, used_method, used_steps, figures, resampled)


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def split_metrics(scored: ScoredPairs, n_boot: int, seed: int, label_names: dict[int, str] | None = None
                  ) -> dict[str, Any]:
    """Means with CIs over the scored pairs, per-structure Dice/HD95 (named when the layout names them),
    one row per pair, and how the pairs were registered."""
    out = registration_metrics(scored.per_pair, n_boot, seed)
    names = label_names or {}
    for key, entry in (out.get("per_label") or {}).items():
        entry["name"] = names.get(int(key), f"label {key}")
    out["method"] = scored.method
    out["refine_steps"] = scored.refine_steps
    out["pairs_resampled"] = len(scored.resampled)
    out["per_pair"] = [{"name": r["name"], **{k: _plain(float(r[k])) for k in ROW_KEYS if k in r}}
                       for r in scored.per_pair]
    return out
