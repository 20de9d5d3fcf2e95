"""Post-processing of predicted label maps, chosen on validation cases (as nnU-Net does).

Largest-connected-component filtering (``inference.largest_component``): for each foreground class
only its largest component is kept. ``auto`` keeps the filter only when it raises the mean
foreground Dice of the validation cases (Isensee et al. 2021); ``on``/``off`` force it.
Label maps are ``(*S)`` integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage


def keep_largest_component(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """For each foreground class keep only its largest connected component (others -> background)."""
    out = labels.copy()
    for k in range(1, num_classes):
        mask = labels == k
        if not mask.any():
            continue
        comps, n = ndimage.label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(comps.ravel())
        sizes[0] = 0
        out[mask & (comps != int(np.argmax(sizes)))] = 0
    return out


def mean_dice(per_case: Mapping[str, Mapping[str, Mapping[str, float]]]) -> float:
    """Mean foreground Dice over cases and classes."""
    return float(np.mean([v["dice"] for case in per_case.values() for v in case.values()]))


def choose_postprocessing(raw: Mapping[str, Any], filtered: Mapping[str, Any], setting: str) -> dict[str, Any]:
    """``{"largest_component": bool, "val_dice_raw", "val_dice_lcc"}`` from the validation metrics
    without (``raw``) and with (``filtered``) the filter; ``setting`` is ``inference.largest_component``."""
    raw_d, lcc_d = mean_dice(raw), mean_dice(filtered)
    chosen = lcc_d > raw_d if setting == "auto" else setting == "on"
    return {"largest_component": bool(chosen), "val_dice_raw": raw_d, "val_dice_lcc": lcc_d}
