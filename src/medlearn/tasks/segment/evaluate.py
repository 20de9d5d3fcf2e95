"""Segmentation evaluation of a model on labelled cases: per-case metrics, summaries with 95% CIs over
cases (:mod:`medlearn.evaluation.segmentation`), pooled binary metrics and the post-processing choice.

:func:`score_cases` predicts each case once (keeping only what the metrics and the report need: per-case
metrics, pooled counts, and a few cases for overlays); :func:`split_metrics` turns that into one split's
entry of ``metrics.json``::

    {"cases": 4, "classes": {"vessel": {"dice": {"value", "ci95"}, "hd95": {...}, "iou", "asd"}},
     "mean_dice": {"value", "ci95"}, "pooled": {"auc": {"value", "ci95"}, "f1": ...},   # binary tasks
     "per_case": {"case_021": {"vessel": {"dice", "iou", "hd95", "asd"}}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.data.images import read_image
from medlearn.data.msd import MSDCase, load_case_image
from medlearn.evaluation.segmentation import PooledBinary, case_metrics, summarise_cases
from medlearn.tasks.segment.data import image_digest
from medlearn.tasks.segment.postprocess import choose_postprocessing, keep_largest_component

if TYPE_CHECKING:
    from medlearn.tasks.segment.model import Segmenter

N_OVERLAYS = 4


@dataclass
class OverlayCase:
    """What the report draws for one case: the raw image ``(C, *S)``, truth and prediction ``(*S)``."""

    name: str
    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray


@dataclass
class ScoredCases:
    """Per-case results of one model on labelled cases (see the module docstring)."""

    per_case: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    pooled: PooledBinary | None = None
    overlays: list[OverlayCase] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    postprocessing: dict[str, Any] | None = None


def score_cases(model: Segmenter, cases: list[MSDCase], choose: bool = False, n_overlays: int = N_OVERLAYS,
                surface: bool = True) -> ScoredCases:
    """Predict and score each case; with ``choose`` also decide the largest-component filter (on these
    cases: call it with validation cases only) and score with the decision."""
    plan = model.plan_
    scored = ScoredCases(pooled=PooledBinary() if plan.num_classes == 2 else None)
    filtered: dict[str, Any] = {}
    for case in cases:
        image, meta = load_case_image(case)
        scored.digests[case.name] = image_digest(image)
        roi = read_image(case.roi, dtype=None)[0][0] > 0 if case.roi is not None else None
        truth = read_image(case.label, dtype=None)[0][0].astype(np.int64)
        probs = model.probabilities(image, meta.spacing, roi, str(case.images[0]))
        raw = model.labels_from_proba(probs, largest_component=False)
        scored.per_case[case.name] = case_metrics(raw, truth, plan.num_classes, roi, meta.spacing, plan.label_names,
                                                  surface)
        lcc = None
        if choose or model.postprocessing_.get("largest_component"):
            lcc = keep_largest_component(raw, plan.num_classes)
            filtered[case.name] = case_metrics(lcc, truth, plan.num_classes, roi, meta.spacing, plan.label_names,
                                               surface=False)
        if scored.pooled is not None:
            scored.pooled.add(probs[1], truth, roi)
        if len(scored.overlays) < n_overlays:
            scored.overlays.append(OverlayCase(case.name, image, truth.astype(np.uint8), raw))
        del probs
    use_filter = bool(model.postprocessing_.get("largest_component"))
    if choose and cases:
        scored.postprocessing = choose_postprocessing(scored.per_case, filtered, plan.inference.largest_component)
        use_filter = scored.postprocessing["largest_component"]
    if use_filter:  # the filter changes overlap metrics; surface distances stay those of the raw map
        for name, classes in filtered.items():
            for cls, values in classes.items():
                scored.per_case[name][cls].update({k: values[k] for k in ("dice", "iou")})
        for item in scored.overlays:
            item.prediction = keep_largest_component(item.prediction, plan.num_classes)
    return scored


def split_metrics(scored: ScoredCases, n_boot: int, seed: int) -> dict[str, Any]:
    """One split's metrics with CIs (module docstring)."""
    out: dict[str, Any] = {"cases": len(scored.per_case), **summarise_cases(scored.per_case, n_boot, seed)}
    if scored.pooled is not None and len(scored.pooled):
        out["pooled"] = scored.pooled.metrics(n_boot, seed)
    out["per_case"] = scored.per_case
    return out
