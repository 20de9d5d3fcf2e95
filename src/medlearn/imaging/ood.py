"""A warning when an input image is far from what the model was trained on.

A model applied to an image of another modality (a CT slice into a breast-ultrasound classifier) still
returns confident probabilities. Training stores an :func:`intensity_profile` of its raw images (and the
DICOM modality when known); :func:`distribution_warning` compares one input with it. This is a coarse,
cheap screen on intensity statistics, not a calibrated out-of-distribution detector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: an image mean this many standard deviations (of the training images' means) from theirs is "far"
Z_LIMIT = 6.0


def intensity_profile(images: np.ndarray, modality: str | None = None) -> dict[str, Any]:
    """Statistics of raw training images ``(N, C, *S)``: per-image means and the intensity range."""
    flat = np.asarray(images, np.float32).reshape(len(images), -1)
    means = flat.mean(1)
    sample = flat[:: max(1, len(flat) // 200)].ravel()
    return {"mean": float(means.mean()), "std_of_means": float(means.std()), "p01": float(np.percentile(sample, 1)),
            "p99": float(np.percentile(sample, 99)), "min": float(sample.min()), "max": float(sample.max()),
            "modality": modality}


def distribution_warning(image: np.ndarray, profile: dict[str, Any] | None, modality: str | None = None) -> str | None:
    """Why ``image`` (raw, ``(C, *S)``) looks unlike the training images, or None."""
    if not profile:
        return None
    trained = profile.get("modality")
    if modality and trained and modality.upper() != str(trained).upper():
        return f"modality {modality} but the model was trained on {trained}"
    values = np.asarray(image, np.float32)
    span = max(profile["p99"] - profile["p01"], 1e-6)
    spread = max(profile["std_of_means"], 0.05 * span)
    z = abs(float(values.mean()) - profile["mean"]) / spread
    lo, hi = np.percentile(values, [1, 99])
    outside = (lo < profile["min"] - span) or (hi > profile["max"] + span)
    if z > Z_LIMIT or outside:
        return (f"intensities [{lo:.4g}, {hi:.4g}] (mean {values.mean():.4g}) are far from the training images' "
                f"[{profile['p01']:.4g}, {profile['p99']:.4g}] (mean {profile['mean']:.4g})")
    return None
