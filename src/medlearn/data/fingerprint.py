"""Dataset fingerprints: the facts the planner and ``medlearn data inspect`` work from."""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.data.classification import ClassificationData


def fingerprint_classification(data: ClassificationData) -> dict[str, Any]:
    """Counts, shape, spacing, intensity statistics, class balance and imbalance ratio."""
    counts = data.class_counts()
    sample = data.images if data.images.size <= 20_000_000 else data.images[:: max(1, len(data) // 500)]
    fp: dict[str, Any] = {
        "source": data.source,
        "task": data.task,
        "n_images": len(data),
        "spatial_dims": data.spatial_dims,
        "channels": data.in_channels,
        "shape": list(data.images.shape[2:]),
        "spacing": list(data.spacing) if data.spacing else None,
        "intensity": {
            "min": float(sample.min()), "max": float(sample.max()),
            "mean": float(sample.mean()), "std": float(sample.std()),
            "p01": float(np.percentile(sample, 1)), "p99": float(np.percentile(sample, 99)),
        },
        "labels": data.label_names,
        "class_counts": {n: int(c) for n, c in zip(data.label_names, counts, strict=True)},
        "imbalance_ratio": imbalance_ratio(counts, len(data) if data.task == "multilabel" else None),
    }
    if data.patient_ids is not None:
        fp["n_patients"] = int(len(np.unique(data.patient_ids)))
        fp["images_per_patient_max"] = int(np.unique(data.patient_ids, return_counts=True)[1].max())
    if data.splits is not None:
        fp["splits"] = {str(s): int((data.splits == s).sum()) for s in np.unique(data.splits)}
    return fp


def imbalance_ratio(counts: np.ndarray, n_total: int | None = None) -> float:
    """Majority / minority class count; multilabel (``n_total`` given): max over labels of neg/pos."""
    counts = np.asarray(counts, float)
    if n_total is not None:
        pos = np.maximum(counts, 1)
        return float(np.max((n_total - counts) / pos))
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) else 1.0
