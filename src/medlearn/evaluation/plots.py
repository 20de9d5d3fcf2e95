"""Evaluation plots. Every function returns a :class:`matplotlib.figure.Figure` (Agg backend, no
display needed) ready for :meth:`medlearn.evaluation.report.Report.add_figure`, which closes it.

Figures are built with ``matplotlib.figure.Figure`` directly (not ``pyplot``), so nothing is kept
in pyplot's global registry and threads or long loops do not leak figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from medlearn.evaluation.calibration import reliability_curve

__all__ = [
    "plot_calibration",
    "plot_precision_recall",
    "plot_confusion_matrix",
    "plot_image_grid",
    "plot_metric_bars",
    "plot_roc",
    "plot_training_curves",
]


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# ---------------------------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------------------------
def plot_training_curves(log: Any) -> Figure:
    """Plot a Lightning ``CSVLogger`` ``metrics.csv`` (path or DataFrame) against epoch.

    Rows are sparse (train and validation metrics are logged on different rows); each column is
    averaged per epoch over its non-empty rows. Columns whose name contains ``loss`` go in the
    left panel, all other metrics (AUC, accuracy, ...) in the right one. ``step``, ``epoch`` and
    learning-rate columns (``lr*``) are not plotted as metrics.
    """
    import pandas as pd

    df = log if isinstance(log, pd.DataFrame) else pd.read_csv(Path(log))
    if "epoch" not in df.columns:
        x_name = "step" if "step" in df.columns else None
        df = df.assign(epoch=df[x_name] if x_name else np.arange(len(df)))
    skip = {"epoch", "step"}
    cols = [
        c
        for c in df.columns
        if c not in skip
        and not str(c).startswith("lr")
        and pd.api.types.is_numeric_dtype(df[c])
        and df[c].notna().any()
    ]
    per_epoch = df.dropna(subset=["epoch"]).groupby("epoch")[cols].mean() if cols else None
    losses = [c for c in cols if "loss" in str(c).lower()]
    others = [c for c in cols if c not in losses]
    panels = [("loss", losses), ("metric", others)]
    panels = [(name, c) for name, c in panels if c] or [("loss", [])]
    fig = _figure(5.0 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, columns) in zip(axes, panels, strict=True):
        for col in columns:
            series = per_epoch[col].dropna()
            ax.plot(series.index, series.values, marker="o" if len(series) < 30 else None, ms=3, label=str(col))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if columns:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Training curves")
    return fig


# ---------------------------------------------------------------------------------------------
# ROC, confusion matrix, calibration
# ---------------------------------------------------------------------------------------------
def _curves(y_true: Any, proba: Any, task: str, label_names: Sequence[str] | None
            ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, 0/1 truth, score) per curve: binary = class 1; else one per class / label."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if task == "binary":
        return [(label_names[1] if label_names else "class 1", y.reshape(-1), p[:, -1] if p.ndim == 2 else p)]
    if task not in ("multiclass", "ordinal", "multilabel"):
        raise ValueError(f"unknown task {task!r}")
    names = list(label_names) if label_names is not None else [str(c) for c in range(p.shape[1])]
    curves = []
    for c in range(p.shape[1]):
        if task == "multilabel":
            mask = ~np.isnan(y[:, c].astype(np.float64))
            curves.append((names[c], y[mask, c].astype(int), p[mask, c]))
        else:
            curves.append((names[c], (y.reshape(-1) == c).astype(int), p[:, c]))
    return curves


def roc_band(y01: np.ndarray, score: np.ndarray, n_boot: int = 200, seed: int = 0, alpha: float = 0.05,
             grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise percentile-bootstrap band of the ROC curve: ``(fpr_grid, tpr_lo, tpr_hi)``."""
    from sklearn.metrics import roc_curve

    grid = np.linspace(0, 1, 101) if grid is None else grid
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y01), len(y01))
        if y01[idx].min() == y01[idx].max():
            continue
        fpr, tpr, _ = roc_curve(y01[idx], score[idx])
        curves.append(np.interp(grid, fpr, tpr))
    if not curves:
        return grid, np.full_like(grid, np.nan), np.full_like(grid, np.nan)
    lo, hi = np.percentile(np.stack(curves), [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return grid, lo, hi


def plot_roc(
    y_true: Any, proba: Any, task: str = "binary", label_names: Sequence[str] | None = None, ax_title: str = "ROC",
    n_boot: int = 200, threshold: float | None = None,
) -> Figure:
    """ROC curves: binary = the class-1 score; multiclass/ordinal = one-vs-rest per class;
    multilabel = one per label (rows with a missing label left out). AUCs in the legend.

    Binary: a 95% pointwise bootstrap band (``n_boot`` resamples; 0 = none) and the operating point of
    ``threshold`` (the score cut the reported accuracy, sensitivity and specificity use).
    Shapes as :func:`medlearn.evaluation.classification.classification_metrics`.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    curves = _curves(y_true, proba, task, label_names)
    fig = _figure(4.8, 4.4)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
    for name, yc, score in curves:
        if yc.size == 0 or yc.min() == yc.max():
            continue  # ROC undefined with one class only
        fpr, tpr, _ = roc_curve(yc, score)
        line = ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUC {roc_auc_score(yc, score):.3f})")[0]
        if task == "binary" and n_boot > 0:
            grid, lo, hi = roc_band(yc, score, n_boot)
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2, lw=0, label="95% CI (bootstrap)")
        if task == "binary" and threshold is not None:
            pred = score > threshold
            tp_rate = float(pred[yc == 1].mean())
            fp_rate = float(pred[yc == 0].mean())
            ax.plot([fp_rate], [tp_rate], "o", color="black", ms=5, label=f"threshold {threshold:g}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (1 - specificity)")
    ax.set_ylabel("true-positive rate (sensitivity)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(ax_title)
    return fig


def plot_precision_recall(y_true: Any, proba: Any, task: str = "binary", label_names: Sequence[str] | None = None,
                          title: str = "Precision-recall") -> Figure:
    """Precision-recall curves (same curves as :func:`plot_roc`), average precision in the legend and
    the prevalence as the chance line (binary)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = _figure(4.8, 4.4)
    ax = fig.subplots()
    for name, yc, score in _curves(y_true, proba, task, label_names):
        if yc.size == 0 or yc.min() == yc.max():
            continue
        precision, recall, _ = precision_recall_curve(yc, score)
        ax.plot(recall, precision, lw=1.6, label=f"{name} (AP {average_precision_score(yc, score):.3f})")
        if task == "binary":
            ax.axhline(float(yc.mean()), ls="--", color="0.6", lw=1, label=f"prevalence {yc.mean():.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall (sensitivity)")
    ax.set_ylabel("precision (PPV)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title)
    return fig


def _draw_cm(ax: Any, cm: np.ndarray, names: Sequence[str], title: str | None) -> Any:
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(rows > 0, cm / rows, 0.0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    k = cm.shape[0]
    small = k <= 12
    for i in range(k):
        for j in range(k):
            if small:
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}\n{frac[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return im


def plot_confusion_matrix(cm: Any, label_names: Sequence[str] | None = None, title: str = "Confusion matrix") -> Figure:
    """Confusion matrix, counts and row-normalised percentages (rows = true class).

    ``cm`` is ``K x K`` or, for multi-label, ``K x 2 x 2`` (one small panel per label, names are
    then the label names).
    """
    cm = np.asarray(cm)
    if cm.ndim == 3:
        k = cm.shape[0]
        names = list(label_names) if label_names is not None else [str(c) for c in range(k)]
        ncols = min(k, 5)
        nrows = math.ceil(k / ncols)
        fig = _figure(2.4 * ncols, 2.4 * nrows + 0.3)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for c in range(k):
            _draw_cm(axes[c], cm[c], ["0", "1"], names[c])
        for ax in axes[k:]:
            ax.set_axis_off()
        fig.suptitle(title)
        return fig
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be K x K or K x 2 x 2, got shape {cm.shape}")
    k = cm.shape[0]
    names = list(label_names) if label_names is not None else [str(c) for c in range(k)]
    size = max(3.6, 0.55 * k + 2.0)
    fig = _figure(size + 0.8, size)
    ax = fig.subplots()
    im = _draw_cm(ax, cm, names, None)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title)
    return fig


def plot_calibration(y_true: Any, proba: Any, n_bins: int = 15, title: str = "Reliability diagram") -> Figure:
    """Reliability diagram (Guo et al. 2017): accuracy vs mean confidence per bin, with the
    diagonal of perfect calibration, the ECE in the title and a histogram of confidences below.

    ``proba`` is ``(N, K)``, or ``(N,)`` class-1 scores for binary tasks.
    """
    from medlearn.evaluation.calibration import expected_calibration_error

    curve = reliability_curve(y_true, proba, n_bins=n_bins)
    ece = expected_calibration_error(y_true, proba, n_bins=n_bins)
    fig = _figure(4.6, 5.2)
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = 1.0 / n_bins
    has = curve["count"] > 0
    ax.bar(curve["bin_lower"][has], curve["accuracy"][has], width=width, align="edge", color="#4c78a8",
           edgecolor="white", label="accuracy")  # fmt: skip
    ax.bar(curve["bin_lower"][has], (curve["confidence"] - curve["accuracy"])[has], bottom=curve["accuracy"][has],
           width=width, align="edge", color="#e45756", alpha=0.35, label="gap")  # fmt: skip
    ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"{title} (ECE {ece:.3f})")
    hist.bar(curve["bin_lower"], curve["count"], width=width, align="edge", color="0.6", edgecolor="white")
    hist.set_xlabel("confidence (top-label probability)")
    hist.set_ylabel("count")
    return fig


# ---------------------------------------------------------------------------------------------
# Images and bars
# ---------------------------------------------------------------------------------------------
def _to_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[2] not in (1, 3, 4):
        img = np.moveaxis(img, 0, -1)  # CHW -> HWC
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img, "gray"
    if img.ndim == 3 and img.shape[2] in (3, 4):
        if img.dtype != np.uint8:
            lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img, dtype=np.float64)
        return img, None
    raise ValueError(f"images must be HxW or HxWx3, got shape {np.asarray(image).shape}")


def plot_image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    overlays: Sequence[np.ndarray | None] | None = None,
    ncols: int = 6,
    alpha: float = 0.45,
    cmap: str = "jet",
) -> Figure:
    """A grid of images with optional heatmap overlays.

    Args:
        images: 2D grayscale ``(H, W)`` or colour ``(H, W, 3)`` arrays (``(1|3, H, W)`` accepted).
        titles: one title per image (optional).
        overlays: heatmaps in [0, 1], same ``H, W`` as their image, drawn with ``alpha`` in
            ``cmap``; an entry may be None.
        ncols: images per row.
    """
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{n} images but {len(titles)} titles")
    if overlays is not None and len(overlays) != n:
        raise ValueError(f"{n} images but {len(overlays)} overlays")
    ncols = max(1, min(ncols, n)) if n else 1
    nrows = max(1, math.ceil(n / ncols))
    fig = _figure(2.0 * ncols, 2.15 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        img, gray = _to_display(images[i])
        ax.imshow(img, cmap=gray, interpolation="nearest")
        if overlays is not None and overlays[i] is not None:
            heat = np.asarray(overlays[i], dtype=np.float64)
            ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="bilinear",
                      extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))  # fmt: skip
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    return fig


def plot_metric_bars(
    metrics: Mapping[str, Any], names: Sequence[str] | None = None, title: str = "Metrics with 95% CI"
) -> Figure:
    """Horizontal bars of scalar metrics with their 95% CI as error bars.

    ``metrics`` maps a name to ``{"value", "ci95"}`` (as returned by ``classification_metrics``) or
    to a float; ``names`` selects and orders them (default: every such entry, e.g. ``auc``,
    ``accuracy``, ...). Entries without a value are skipped.
    """
    keys = list(names) if names is not None else list(metrics)
    labels, values, lows, highs = [], [], [], []
    for key in keys:
        entry = metrics.get(key)
        if isinstance(entry, Mapping) and "value" in entry:
            value, ci = entry["value"], entry.get("ci95")
        elif isinstance(entry, (int, float)) and not isinstance(entry, bool):
            value, ci = entry, None
        else:
            continue
        if value is None or not np.isfinite(value):
            continue
        labels.append(str(key))
        values.append(float(value))
        ok = ci is not None and all(c is not None and np.isfinite(c) for c in ci)
        lows.append(float(value) - float(ci[0]) if ok else 0.0)
        highs.append(float(ci[1]) - float(value) if ok else 0.0)
    fig = _figure(5.0, 0.35 * max(len(labels), 1) + 1.2)
    ax = fig.subplots()
    pos = np.arange(len(labels))
    ax.barh(pos, values, xerr=[lows, highs], color="#4c78a8", capsize=3, ecolor="0.3")
    for y_pos, v in zip(pos, values, strict=True):
        ax.text(v, y_pos, f" {v:.3f}", va="center", fontsize=8)
    ax.set_yticks(pos, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, max(values, default=1.0) * 1.1))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return fig
