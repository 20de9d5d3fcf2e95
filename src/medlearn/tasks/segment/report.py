"""The segmentation report: plan, mean and pooled metrics, per-case table and overlay images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlearn.tasks.segment.plan import SegmentationPlan


def per_case_rows(per_case: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per case and foreground class: case, class, dice, iou, hd95, asd."""
    rows = []
    for name, classes in per_case.items():
        for cls, values in classes.items():
            rows.append({"case": name, "class": cls, **values})
    return rows


def write_segmentation_report(path: Path, title: str, plan: SegmentationPlan, evaluation: dict[str, Any],
                              overlays: list[tuple[str, np.ndarray]], extra: dict[str, Any] | None = None,
                              subtitle: str | None = None) -> Path:
    """Write ``report.html`` (+ ``figures/``) next to the run files."""
    from medlearn.evaluation.report import Report

    report = Report(title, subtitle=subtitle or f"{plan.network.name}, {plan.ndim}D, patch {plan.train.patch_size}")
    report.add_heading("Metrics")
    if evaluation.get("seen_in_training"):
        report.add_paragraph("The model also learnt from these validation cases (train.train_on_val_cases): "
                             "their metrics are optimistic; judge the model on held-out test cases.")
    summary: dict[str, Any] = {"mean over cases": evaluation.get("mean", {})}
    if "pooled" in evaluation:
        summary["pooled pixels (inside ROI)"] = evaluation["pooled"]
    if extra:
        summary.update(extra)
    if "postprocessing" in evaluation:
        summary["post-processing"] = evaluation["postprocessing"]
    report.add_metrics(summary)
    if evaluation.get("per_case"):
        report.add_heading("Per case")
        report.add_table(per_case_rows(evaluation["per_case"]))
    if overlays:
        report.add_heading("Overlays")
        report.add_paragraph("Green: reference only; magenta: prediction only; light: both.")
        for name, image in overlays:
            report.add_image(image, f"overlay_{name}", caption=name)
    report.add_heading("Plan")
    report.add_preformatted(plan.describe())
    return report.write(path)
