"""Which trained members a QSAR model keeps, decided on the validation molecules only.

``auto``: every candidate alone, the mean of the best two, the mean of the best three (candidates ranked
by their own validation score); the option with the best validation score wins (ties: the earlier
option, so a single model before a blend). A chosen model's members (one, or a seed ensemble) are all
kept and averaged. Without validation molecules nothing can be chosen: every member is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.tasks.qsar.members import QSARMember
from medlearn.tasks.qsar.module import primary_metric, primary_score


def select_members(auto: bool, task_type: str, candidates: list[QSARMember], val_predictions: list[np.ndarray | None],
                   y_val: np.ndarray) -> tuple[list[QSARMember], dict[str, Any]]:
    """The kept members and a summary ``{"chosen", "val_score", "options"}``.

    ``val_predictions[i]``: candidate ``i``'s ``(N_val, T)`` predictions (None without validation
    molecules); each candidate's ``val_score`` is
    set here (None without validation molecules).
    """
    name, higher = primary_metric(task_type)
    has_val = len(y_val) > 0
    for member, pred in zip(candidates, val_predictions, strict=True):
        member.val_score = _finite(primary_score(task_type, y_val, pred)) if has_val else None
    if not (auto and has_val and len(candidates) > 1):
        summary: dict[str, Any] = {"chosen": [m.kind for m in candidates], "metric": name}
        if has_val:
            summary["val_score"] = _finite(primary_score(task_type, y_val, np.mean(val_predictions, axis=0)))
        return list(candidates), summary
    sign = 1.0 if higher else -1.0

    def rank(score: float | None) -> float:
        return sign * score if score is not None else -np.inf

    order = sorted(range(len(candidates)), key=lambda i: -rank(candidates[i].val_score))
    options: dict[tuple[int, ...], float | None] = {(i,): candidates[i].val_score for i in order}
    for k in (2, 3):
        if len(order) >= k:
            idx = tuple(order[:k])
            options[idx] = _finite(primary_score(task_type, y_val, np.mean([val_predictions[i] for i in idx], axis=0)))
    best = max(options, key=lambda key: rank(options[key]))
    named = {"+".join(candidates[i].kind for i in key): value for key, value in options.items()}
    return [candidates[i] for i in best], {"chosen": [candidates[i].kind for i in best], "metric": name,
                                           "val_score": options[best], "options": named}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
