"""Evaluate a trained classifier per split (and per patient) and write the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlearn.data.classification import ClassificationData
from medlearn.engine.rundir import RunDirectory
from medlearn.evaluation.classification import classification_metrics, per_class_rows, summary_rows
from medlearn.evaluation.plots import (
    plot_calibration,
    plot_confusion_matrix,
    plot_image_grid,
    plot_roc,
    plot_training_curves,
)
from medlearn.evaluation.report import Report
from medlearn.tasks.classify.patient import PatientAggregator, patient_bags, predict_patients
from medlearn.tasks.classify.plan import ClassificationPlan
from medlearn.tasks.classify.predict import embed_images, predict_proba

N_EXAMPLES = 12


def metric_task(plan: ClassificationPlan) -> str:
    return plan.task


def evaluate_splits(run: RunDirectory, plan: ClassificationPlan, net: torch.nn.Module, data: ClassificationData,
                    images: np.ndarray, splits: np.ndarray, n_boot: int = 1000,
                    aggregator: PatientAggregator | None = None, report_path: Path | None = None,
                    title: str | None = None) -> dict[str, Any]:
    """Metrics for every split present (val, test; or ``all`` when ``splits`` is None) + the report."""
    metrics: dict[str, Any] = {"task": plan.task, "label_names": plan.label_names}
    names = [s for s in ("val", "test", "all") if (splits == s).any()]
    proba_all = predict_proba(net, images, plan.task, tta=plan.flip_tta)
    for split in names:
        rows = splits == split
        groups = data.patient_ids[rows] if data.patient_ids is not None else None
        metrics[split] = classification_metrics(data.labels[rows], proba_all[rows], plan.task, plan.label_names,
                                                n_boot=n_boot, seed=plan.seed, groups=groups)
    if aggregator is not None and data.patient_ids is not None:
        emb = embed_images(net, images)
        metrics["patient"] = {"aggregation": plan.patient.aggregation}
        for split in names:
            rows = splits == split
            _, bags, lengths, labels = patient_bags(emb[rows], data.labels[rows], data.patient_ids[rows])
            p = predict_patients(aggregator, bags, lengths, plan.task)
            metrics["patient"][split] = classification_metrics(labels, p, plan.task, plan.label_names,
                                                               n_boot=n_boot, seed=plan.seed)
    headline = "test" if "test" in names else names[-1]
    write_report(report_path or run.report_file, run, plan, net, data, images, splits, proba_all, metrics, headline,
                 title)
    return metrics


def write_report(path: Path, run: RunDirectory, plan: ClassificationPlan, net: torch.nn.Module,
                 data: ClassificationData, images: np.ndarray, splits: np.ndarray, proba: np.ndarray,
                 metrics: dict[str, Any], headline: str, title: str | None = None) -> None:
    """Self-contained report: metrics with CIs, curves, ROC, confusion, calibration, explained examples."""
    report = Report(title or "medlearn classification report",
                    f"{Path(data.source).name} - {plan.task}, {len(plan.label_names)} classes, "
                    f"network {plan.model.network}")
    report.add_heading("Metrics")
    rows = []
    for split in ("val", "test", "all"):
        if split in metrics:
            rows += summary_rows(metrics[split], split)
    caption = "95% bootstrap confidence intervals in brackets. "
    caption += ("The model also learnt from the val images (train.train_on_val): their metrics are not unseen-data "
                "estimates." if plan.learns_from_val else "Selection used val only.")
    report.add_table(rows, caption=caption)
    if "patient" in metrics:
        prow = []
        for split in ("val", "test", "all"):
            if split in metrics["patient"]:
                prow += summary_rows(metrics["patient"][split], split)
        report.add_heading("Patient-level metrics", 3)
        report.add_table(prow, caption=f"aggregation: {plan.patient.aggregation}")
    report.add_table(per_class_rows(metrics[headline]), caption=f"Per class ({headline})")
    report.add_paragraph(f"Class imbalance ratio (train, majority/minority): {plan.imbalance.ratio} -> "
                         f"strategy '{plan.imbalance.strategy}'.")
    log_csv = next((p for p in (run.logs_dir / "metrics.csv", run.logs_dir / "member0" / "metrics.csv") if p.exists()),
                   None)
    if log_csv is not None:
        report.add_heading("Training")
        report.add_figure(plot_training_curves(log_csv), "training_curves", "Loss and validation metrics per epoch")
    rows = splits == headline
    y, p = data.labels[rows], proba[rows]
    report.add_heading(f"Evaluation ({headline})")
    report.add_figure(plot_roc(y, p, plan.task, plan.label_names), "roc", "ROC curves")
    cm = np.asarray(metrics[headline]["confusion_matrix"])
    if cm.ndim == 2:
        report.add_figure(plot_confusion_matrix(cm, plan.label_names), "confusion_matrix", "Confusion matrix")
    if plan.task != "multilabel":
        report.add_figure(plot_calibration(y, p), "calibration", "Reliability diagram (top-label)")
    _add_examples(report, plan, net, data, images, rows, p)
    report.add_heading("Plan", 3)
    report.add_preformatted(plan.describe())
    report.write(path)


def _add_examples(report: Report, plan: ClassificationPlan, net: torch.nn.Module, data: ClassificationData,
                  images: np.ndarray, rows: np.ndarray, proba: np.ndarray) -> None:
    """Grad-CAM overlays on a few images (most confident right and wrong), 2D only."""
    if plan.spatial_dims != 2 or plan.model.network == "mlp":
        return
    from medlearn.explain import grad_cam

    index = np.flatnonzero(rows)
    pred = proba.argmax(1)
    n = min(N_EXAMPLES, len(index))
    pick = np.random.default_rng(plan.seed).choice(len(index), size=n, replace=False)
    x = torch.from_numpy(images[index[pick]])
    heat = grad_cam(net, x)
    shown = [to_display(data.images[i]) for i in index[pick]]
    titles = []
    for i in pick:
        truth = data.labels[index[i]]
        truth_name = plan.label_names[int(truth)] if np.ndim(truth) == 0 else "multi"
        titles.append(f"true {truth_name} / pred {plan.label_names[int(pred[i])]} ({proba[i].max():.2f})")
    report.add_heading("Examples with Grad-CAM", 3)
    report.add_figure(plot_image_grid(shown, titles, [h.T for h in heat], ncols=6), "examples_gradcam",
                      "Grad-CAM (Selvaraju et al. 2017) of the predicted class on random evaluation images")


def to_display(image: np.ndarray) -> np.ndarray:
    """``(C, X, Y)`` -> ``(H, W)`` grayscale or ``(H, W, 3)`` for plotting."""
    if image.shape[0] == 1:
        return image[0].T
    return np.transpose(image[:3], (2, 1, 0))


def predictions_table(ids: list[str], proba: np.ndarray, plan: ClassificationPlan) -> pd.DataFrame:
    table = pd.DataFrame({"id": ids})
    for k, name in enumerate(plan.label_names):
        table[f"p_{name}"] = proba[:, k]
    if plan.task == "multilabel":
        table["predicted"] = [";".join(n for n, v in zip(plan.label_names, row, strict=True) if v > 0.5)
                              for row in proba]
    else:
        table["predicted"] = [plan.label_names[k] for k in proba.argmax(1)]
    return table
