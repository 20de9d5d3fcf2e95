"""The segmentation report's own sections: metrics with CIs per class, pooled pixel metrics, training
curves, overlays of several slices per case, a per-case table and the plan.

Overlays show the image in grey, agreement light, the reference alone green, the prediction alone magenta
and a wrong class orange; 3D cases show three axial slices through the structures (at the 20th, 50th and
80th percentile of the foreground voxels along Z, truth and prediction together), each panel drawn large
enough to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from medlearn.evaluation.report import Report
from medlearn.tasks.segment.evaluate import OverlayCase

if TYPE_CHECKING:
    from medlearn.data.splits import Splits
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.segment.data import SegmentationData
    from medlearn.tasks.segment.model import Segmenter

SPLIT_NAMES = {"val": "validation cases", "test": "test cases", "all": "all labelled cases"}
PANEL_INCHES = 4.2  # at the report's 110 dpi ~460 px per panel: structures a few pixels wide stay visible
MAX_CASE_ROWS = 500


def slice_indices(truth: np.ndarray, pred: np.ndarray, n: int = 3) -> list[int]:
    """``n`` distinct Z indices through the foreground of ``truth | pred`` ``(X, Y, Z)`` (the middle without any)."""
    counts = ((truth > 0) | (pred > 0)).sum((0, 1)).astype(np.float64)
    depth = truth.shape[2]
    if counts.sum() == 0:
        return [depth // 2]
    cumulative = np.cumsum(counts) / counts.sum()
    picks = [int(np.searchsorted(cumulative, q)) for q in np.linspace(0.2, 0.8, n)]
    return sorted(set(min(p, depth - 1) for p in picks))


def overlay_rgb(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] from one 2D slice: image ``(C, X, Y)``, truth/pred ``(X, Y)``.

    Grey image (the green channel of an RGB photograph, where vessels contrast best) at 60%; agreement
    (same label) reads light, misses green, false positives magenta and a wrong class orange.
    """
    grey = image[1] if image.shape[0] == 3 else image[0]
    lo, hi = np.percentile(grey, (1, 99))
    grey = np.clip((grey - lo) / max(float(hi - lo), 1e-6), 0, 1)
    rgb = np.stack([grey] * 3, -1) * 0.6
    t, p = truth > 0, pred > 0
    colours = ((t & p & (truth == pred), (0.4, 0.4, 0.4)), (t & ~p, (0.0, 0.4, 0.0)), (p & ~t, (0.4, 0.0, 0.4)),
               (t & p & (truth != pred), (0.4, 0.2, 0.0)))
    for mask, colour in colours:
        rgb[mask] += colour
    return np.clip(rgb, 0, 1).transpose(1, 0, 2)  # (X, Y) -> (H = Y, W = X)


def overlay_panels(item: OverlayCase) -> list[tuple[str, np.ndarray]]:
    """(title, RGB panel) per slice shown for one case."""
    if item.truth.ndim == 2:
        return [(item.name, overlay_rgb(item.image, item.truth, item.prediction))]
    return [(f"{item.name}, z={z}", overlay_rgb(item.image[..., z], item.truth[..., z], item.prediction[..., z]))
            for z in slice_indices(item.truth, item.prediction)]


def plot_overlays(items: list[OverlayCase]) -> Figure:
    """One figure: 2D cases in a grid of two columns; 3D cases one row each (three slices)."""
    rows = [overlay_panels(item) for item in items]
    if items and items[0].truth.ndim == 2:
        flat = [panel for row in rows for panel in row]
        ncols = min(2, len(flat))
        rows = [flat[i:i + ncols] for i in range(0, len(flat), ncols)]
    ncols = max(len(r) for r in rows)
    h, w = rows[0][0][1].shape[:2]
    aspect = h / max(w, 1)
    fig = Figure(figsize=(PANEL_INCHES * ncols, PANEL_INCHES * aspect * len(rows) + 0.4 * len(rows)),
                 layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_axis_off()
            if c < len(row):
                title, panel = row[c]
                ax.imshow(panel, interpolation="nearest")
                ax.set_title(title, fontsize=10)
    return fig


def class_rows(split: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per foreground class (Dice and HD95 with CIs, IoU, ASD) and the mean Dice."""
    rows = [{"class": cls, "Dice": m["dice"], "HD95 (mm)": m["hd95"], "IoU": m["iou"], "ASD (mm)": m["asd"]}
            for cls, m in split["classes"].items()]
    if len(rows) > 1:
        rows.append({"class": "mean over classes", "Dice": split["mean_dice"]})
    return rows


def case_rows(split: dict[str, Any], limit: int = MAX_CASE_ROWS) -> list[dict[str, Any]]:
    """One row per case and foreground class: case, class, Dice, IoU, HD95, ASD."""
    rows = []
    for name, classes in split["per_case"].items():
        for cls, values in classes.items():
            rows.append({"case": name, "class": cls, "Dice": values["dice"], "IoU": values["iou"],
                         "HD95 (mm)": values["hd95"], "ASD (mm)": values["asd"]})
    return rows[:limit]


def cohort_rows(data: SegmentationData, splits: Splits | None, trained_on: set[str]) -> list[dict[str, Any]]:
    if splits is None:  # another dataset: names say nothing (seen_in_training compares pixels)
        return [{"split": "all", "cases": len(data.cases)}]
    rows = []
    for split in ("train", "val", "test"):
        names = [splits.ids[i] for i in splits.indices(split)]
        if names:
            rows.append({"split": split, "cases": len(names), "learnt from in training": sum(n in trained_on
                                                                                               for n in names)})
    return rows


def write_report(path: Path, model: Segmenter, data: SegmentationData, splits: Splits | None, metrics: dict[str, Any],
                 run: RunDirectory | None, title: str) -> Path:
    """Write ``report.html`` (+ ``figures/``) at ``path``."""
    plan = model.plan_
    members = plan.train.ensemble
    report = Report(title, subtitle=f"{Path(data.source).name} - {plan.network.name}, {plan.ndim}D, patch "
                                    f"{plan.train.patch_size}, {members} member{'s' if members > 1 else ''}")
    trained_on = set(model.extras_.get("trained_cases", []))
    report.add_heading("Cohort")
    report.add_table(cohort_rows(data, splits, trained_on), caption="Cases per split")
    seen = metrics.get("seen_in_training", {}).get("items")
    if seen:
        report.add_paragraph(f"Warning: {seen} of {metrics['seen_in_training']['of']} evaluated cases are images the "
                             "model learnt from (identical pixels): these metrics are optimistic.")
    report.add_heading("Metrics")
    for key in ("val", "test", "all"):
        split = metrics.get(key)
        if not split:
            continue
        report.add_heading(f"{SPLIT_NAMES[key].capitalize()} ({split['cases']})", 3)
        if split.get("seen_in_training"):
            report.add_paragraph("The model also learnt from these validation cases (train.train_on_val_cases): "
                                 "their metrics are optimistic; judge the model on held-out test cases.")
        report.add_table(class_rows(split), caption="Mean over cases; 95% bootstrap CI over cases in brackets "
                                                    "(not estimable below 10 cases). HD95: cases where the class "
                                                    "is absent from prediction or truth are left out.")
        if "pooled" in split:
            report.add_metrics(split["pooled"], caption="Pooled over all pixels inside the ROI (threshold 0.5), "
                                                        "95% CI over cases")
        if split.get("postprocessing"):
            post = split["postprocessing"]
            report.add_paragraph(f"Post-processing chosen on these cases: largest connected component "
                                 f"{'on' if post['largest_component'] else 'off'} (mean Dice without "
                                 f"{post['val_dice_raw']:.4f}, with {post['val_dice_lcc']:.4f}; "
                                 f"inference.largest_component={plan.inference.largest_component}).")
    if run is not None:
        logs = sorted(run.logs_dir.rglob("metrics.csv"))
        if logs:
            report.add_heading("Training")
            for log in logs:
                member = log.parent.name if log.parent != run.logs_dir else "model"
                report.add_training_curves(log, caption=f"Training loss and validation Dice per epoch ({member}; "
                                                        f"{log.relative_to(run.path)})")
    overlays = metrics.get("_overlays") or []
    if overlays:
        report.add_heading("Overlays")
        report.add_paragraph("Grey: the image; light: prediction and reference agree; green: reference only; "
                             "magenta: prediction only; orange: another class predicted."
                             + (" Three axial slices per case through its structures." if plan.ndim == 3 else ""))
        report.add_figure(plot_overlays(overlays), "overlays", caption=", ".join(o.name for o in overlays))
    headline = next((k for k in ("test", "all", "val") if k in metrics), None)
    if headline:
        report.add_heading("Cases")
        rows = case_rows(metrics[headline])
        report.add_table(rows, caption=f"Per case ({SPLIT_NAMES[headline]}"
                                       + (f"; first {MAX_CASE_ROWS} rows" if len(rows) == MAX_CASE_ROWS else "") + ")")
    report.add_heading("Plan", 3)
    report.add_preformatted(plan.describe())
    return report.write(path)


def headline_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the terminal prints after training or evaluation: Dice/HD95 per class (CIs), pooled F1/AUC."""
    from medlearn.evaluation.report import format_value

    out: dict[str, Any] = {}
    for key in ("val", "test", "all"):
        split = metrics.get(key)
        if not split:
            continue
        row: dict[str, Any] = {}
        for cls, m in split["classes"].items():
            row[f"dice {cls}"] = format_value(m["dice"])
            row[f"hd95 {cls}"] = format_value(m["hd95"])
        if len(split["classes"]) > 1:
            row["mean dice"] = format_value(split["mean_dice"])
        for name in ("auc", "f1"):
            if name in split.get("pooled", {}):
                row[f"pooled {name}"] = format_value(split["pooled"][name])
        label = f"{key} (trained on)" if split.get("seen_in_training") else key
        out[label] = row
    return out
