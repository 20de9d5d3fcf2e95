"""The registration report's own sections: metrics with CIs, per-structure Dice and HD95, checkerboards and
overlays before and after, the Jacobian-determinant map, a per-pair table, training curves and the plan.

Checkerboards alternate tiles of the fixed image and the moving (before) or warped (after) image: edges
that continue across tile borders mean alignment. Overlays put the fixed image in magenta and the moving /
warped one in green: grey where they agree. The Jacobian map shows ``det(I + du/dx)`` of the field (1: volume
kept; blue < 1 contraction, red > 1 expansion), folding (``det <= 0``) in black. 3D pairs show the middle
slice along the last axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from medlearn.evaluation.registration import folding_percent
from medlearn.evaluation.report import Report, format_value
from medlearn.tasks.register.evaluate import FigurePair

if TYPE_CHECKING:
    from medlearn.data.splits import Splits
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.register.dataset import RegistrationData
    from medlearn.tasks.register.model import Registrator

SPLIT_NAMES = {"val": "validation pairs", "test": "test pairs", "all": "all pairs"}
PANEL_INCHES = 2.6
TILES = 8
METRIC_ROWS = (("dice", "Dice (warped labels)"), ("dice_before", "Dice before"), ("hd95", "HD95 (mm)"),
               ("tre_mm", "TRE (mm)"), ("tre_mm_before", "TRE before (mm)"), ("folding_percent", "folding (% voxels)"),
               ("std_log_jacobian", "SDlogJ"), ("ncc_before", "NCC before"), ("ncc_after", "NCC after"),
               ("mi_before", "MI before (nats)"), ("mi_after", "MI after (nats)"), ("seconds", "seconds per pair"))


def _display(image: np.ndarray) -> np.ndarray:
    """``(X, Y)`` -> ``(H = Y, W = X)`` in [0, 1] (1/99 percentiles)."""
    lo, hi = np.percentile(image, (1, 99))
    return np.clip((image - lo) / max(float(hi - lo), 1e-6), 0, 1).T


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = TILES) -> np.ndarray:
    """``(H, W)`` tiles alternating ``a`` and ``b`` (display-scaled ``(X, Y)`` slices)."""
    da, db = _display(a), _display(b)
    h, w = da.shape
    yy, xx = np.meshgrid(np.arange(h) * tiles // max(h, 1), np.arange(w) * tiles // max(w, 1), indexing="ij")
    return np.where((yy + xx) % 2 == 0, da, db)


def overlay(fixed: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``(H, W, 3)``: fixed in magenta, the other image in green (grey where they agree)."""
    f, o = _display(fixed), _display(other)
    return np.stack([f, o, f], -1)


def plot_pairs(figures: list[FigurePair]) -> Figure:
    """One row per pair: fixed, moving, warped, checkerboard before and after."""
    fig = Figure(figsize=(PANEL_INCHES * 5, PANEL_INCHES * len(figures) + 0.3), layout="constrained")
    axes = fig.subplots(len(figures), 5, squeeze=False)
    for r, item in enumerate(figures):
        panels = [("fixed", _display(item.fixed)), ("moving", _display(item.moving)), ("warped", _display(item.warped)),
                  ("checkerboard before", checkerboard(item.fixed, item.moving)),
                  ("checkerboard after", checkerboard(item.fixed, item.warped))]
        for c, (title, panel) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"{item.name}: {title}" if c == 0 else title, fontsize=8)
    return fig


def plot_overlays_and_jacobian(figures: list[FigurePair]) -> Figure:
    """One row per pair: overlay before, overlay after, the Jacobian determinant (folding black)."""
    fig = Figure(figsize=(PANEL_INCHES * 3 + 0.8, PANEL_INCHES * len(figures) + 0.3), layout="constrained")
    axes = fig.subplots(len(figures), 3, squeeze=False)
    for r, item in enumerate(figures):
        axes[r][0].imshow(overlay(item.fixed, item.moving), interpolation="nearest")
        axes[r][0].set_title(f"{item.name}: before", fontsize=8)
        axes[r][1].imshow(overlay(item.fixed, item.warped), interpolation="nearest")
        axes[r][1].set_title("after (fixed magenta, warped green)", fontsize=8)
        det = np.asarray(item.jacobian, float).T
        shown = np.ma.masked_where(det <= 0, det)
        cmap = colormaps["RdBu_r"].with_extremes(bad="black")
        im = axes[r][2].imshow(shown, cmap=cmap, vmin=0.0, vmax=2.0, interpolation="nearest")
        axes[r][2].set_title(f"det J (folding {folding_percent(det):.2f} %)", fontsize=8)
        fig.colorbar(im, ax=axes[r][2], shrink=0.8)
        for ax in axes[r]:
            ax.set_axis_off()
    return fig


def ci(entry: dict[str, Any]) -> dict[str, Any]:
    """A metric entry as :func:`~medlearn.evaluation.report.format_value` reads it (``n``, the pairs it is
    defined on, shown in its own column)."""
    return {k: v for k, v in entry.items() if k in ("value", "ci95", "ci_note")}


def metric_rows(split: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric present: mean [95% CI] over pairs and the pairs it is defined on."""
    return [{"metric": label, "mean [95% CI]": ci(split[key]), "pairs": split[key].get("n")}
            for key, label in METRIC_ROWS if key in split]


def structure_rows(split: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": key, "structure": entry.get("name", key), "Dice": ci(entry["dice"]), "HD95 (mm)": ci(entry["hd95"]),
             "pairs": entry["dice"].get("n")} for key, entry in (split.get("per_label") or {}).items()]


def pair_rows(split: dict[str, Any], limit: int = 500) -> list[dict[str, Any]]:
    return list(split.get("per_pair") or [])[:limit]


def cohort_rows(data: RegistrationData, splits: Splits | None) -> list[dict[str, Any]]:
    if splits is None:
        return [{"split": "all", "pairs": len(data.pairs)}]
    return [{"split": s, "pairs": n} for s, n in splits.sizes().items() if n]


def write_report(path: Path, model: Registrator, data: RegistrationData, splits: Splits | None,
                 metrics: dict[str, Any], run: RunDirectory | None, title: str) -> Path:
    """Write ``report.html`` (+ ``figures/``) at ``path``."""
    plan = model.plan_
    method = next((metrics[k]["method"] for k in ("test", "val", "all") if k in metrics), plan.inference.method)
    what = plan.network.name if method == "network" else f"SimpleITK {method}"
    report = Report(title, subtitle=f"{Path(data.source).name} - {what}, {plan.ndim}D, working grid "
                                    f"{plan.data.working_shape}, similarity {plan.loss.similarity}")
    report.add_heading("Pairs")
    report.add_table(cohort_rows(data, splits), caption=f"Pairs per split ({data.layout} layout)")
    notes = data.resampled_notes()
    if notes:
        report.add_paragraph(f"Note: in {len(notes)} pair(s) the moving image had another grid (spacing, size or "
                             "orientation) and was resampled onto the fixed image's grid (linear; labels nearest "
                             "neighbour) before registration: " + "; ".join(notes[:10])
                             + (" ..." if len(notes) > 10 else ""))
    seen = metrics.get("seen_in_training", {}).get("items")
    if seen:
        report.add_paragraph(f"Warning: {seen} of {metrics['seen_in_training']['of']} evaluated pairs are pairs the "
                             "model learnt from (identical images): these metrics are optimistic.")
    figures: list[FigurePair] = metrics.get("_figures") or []
    for key in ("val", "test", "all"):
        split = metrics.get(key)
        if not split:
            continue
        how = "the network" if split["method"] == "network" else f"SimpleITK ({split['method']})"
        if split["method"] == "network" and split.get("refine_steps"):
            how += f" + {split['refine_steps']} instance-optimisation steps"
        report.add_heading(f"{SPLIT_NAMES[key].capitalize()} ({split['n']}), registered by {how}")
        rows = structure_rows(split)
        labels = f"Dice: per pair the mean over the structures both label maps hold ({len(rows)} here); " if rows \
            else ""
        report.add_table(metric_rows(split), caption=f"Mean over pairs; 95% bootstrap CI over pairs in brackets (not "
                                                     f"estimable below 10 pairs). {labels}TRE: keypoints, or a known "
                                                     "field over the fixed mask / labelled region.")
        if rows:
            report.add_table(rows, caption="Per structure: Dice and HD95 of the warped moving labels (pairs where "
                                           "both maps hold the structure)")
    if figures:
        report.add_heading("Figures")
        report.add_figure(plot_pairs(figures), "checkerboards", caption="Fixed, moving, warped; checkerboards of "
                                                                        "fixed/moving before and fixed/warped after")
        report.add_figure(plot_overlays_and_jacobian(figures), "overlays_jacobian",
                          caption="Overlays (fixed magenta, moving/warped green) and the Jacobian determinant of "
                                  "the field (1: volume kept; black: folding)")
    headline_key = next((k for k in ("test", "all", "val") if k in metrics), None)
    if headline_key:
        report.add_heading("Pairs", 3)
        report.add_table(pair_rows(metrics[headline_key]), caption=f"Per pair ({SPLIT_NAMES[headline_key]})")
    if run is not None:
        logs = sorted(run.logs_dir.rglob("metrics.csv"))
        if logs:
            report.add_heading("Training")
            for log in logs:
                report.add_training_curves(log, caption=f"Training and validation loss ({log.relative_to(run.path)})")
    report.add_heading("Plan", 3)
    report.add_preformatted(plan.describe())
    return report.write(path)


def headline_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the terminal prints: Dice, HD95, TRE, folding, NCC before -> after and seconds per pair."""
    out: dict[str, Any] = {}
    for key in ("val", "test", "all"):
        split = metrics.get(key)
        if not split:
            continue
        row: dict[str, Any] = {"method": split["method"]}
        for name, label in (("dice", "dice"), ("hd95", "hd95 mm"), ("tre_mm", "tre mm"),
                            ("folding_percent", "folding %"), ("ncc_after", "ncc after"), ("seconds", "s per pair")):
            if name in split:
                row[label] = format_value(ci(split[name]))
        if "ncc_before" in split:
            row["ncc before"] = format_value(ci(split["ncc_before"]))
        out[key] = row
    return out
