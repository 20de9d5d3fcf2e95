"""Evaluation: metrics with bootstrap confidence intervals, calibration, plots and the HTML report.

Submodules are imported on first use (``from medlearn.evaluation import Report`` works) so that
importing the package does not pull in matplotlib or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Report": "report",
    "format_value": "report",
    "bootstrap_ci": "bootstrap",
    "bootstrap_counts": "bootstrap",
    "bootstrap_indices": "bootstrap",
    "metric_with_ci": "bootstrap",
    "percentile_interval": "bootstrap",
    "classification_metrics": "classification",
    "regression_metrics": "regression",
    "multitask_binary_metrics": "multitask",
    "affinity_metrics": "affinity",
    "expected_calibration_error": "calibration",
    "reliability_curve": "calibration",
    "plot_training_curves": "plots",
    "plot_roc": "plots",
    "plot_confusion_matrix": "plots",
    "plot_calibration": "plots",
    "plot_image_grid": "plots",
    "plot_metric_bars": "plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"medlearn.evaluation.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'medlearn.evaluation' has no attribute {name!r}")
