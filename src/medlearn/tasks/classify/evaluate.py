"""Classification evaluation: metrics per split (and per patient) with 95% CIs, and the report sections."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from medlearn.data.classification import ClassificationData
from medlearn.evaluation.classification import classification_metrics, per_class_rows, summary_rows
from medlearn.evaluation.plots import (
    plot_calibration,
    plot_confusion_matrix,
    plot_image_grid,
    plot_precision_recall,
    plot_roc,
    plot_training_curves,
)
from medlearn.evaluation.report import Report
from medlearn.tasks.classify.data import resize_all
from medlearn.tasks.classify.plan import ClassificationPlan
from medlearn.tasks.classify.predict import predict_proba

if TYPE_CHECKING:
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.classify.model import Classifier

N_EXAMPLES = 12
SPLIT_ORDER = ("val", "test", "all")


def evaluation_splits(data: ClassificationData, assignment: np.ndarray | None) -> np.ndarray:
    """Which rows to score: a run's val/test (``assignment``), the data's own val/test split, or all."""
    if assignment is not None:
        return np.asarray(assignment, dtype=object)
    if data.splits is not None and np.isin(data.splits, ["val", "test"]).any():
        return np.where(np.isin(data.splits, ["val", "test"]), data.splits, "train").astype(object)
    return np.full(len(data), "all", dtype=object)


def evaluate_model(model: Classifier, data: ClassificationData, assignment: np.ndarray | None,
                   n_boot: int) -> dict[str, Any]:
    """Metrics for every split present (val, test; or ``all``), per image and per patient."""
    plan = model.plan_
    images = resize_all(data.images, plan.input_size)
    proba = predict_proba(model.net_, model.normalise(images), plan.task, tta=plan.flip_tta)
    splits = evaluation_splits(data, assignment)
    metrics: dict[str, Any] = {"classification": plan.task, "label_names": plan.label_names}
    names = [s for s in SPLIT_ORDER if (splits == s).any()]
    for split in names:
        rows = splits == split
        groups = data.patient_ids[rows] if data.patient_ids is not None else None
        metrics[split] = classification_metrics(data.labels[rows], proba[rows], plan.task, plan.label_names,
                                                n_boot=n_boot, seed=plan.train.seed, groups=groups)
    if plan.patient.aggregation != "none" and data.patient_ids is not None:
        metrics["patient"] = {"aggregation": plan.patient.aggregation}
        for split in names:
            rows = splits == split
            pids, pproba = model.patient_probabilities(images[rows], proba[rows], data.patient_ids[rows])
            labels = patient_labels(data.labels[rows], data.patient_ids[rows], pids)
            metrics["patient"][split] = classification_metrics(labels, pproba, plan.task, plan.label_names,
                                                               n_boot=n_boot, seed=plan.train.seed)
    metrics["_proba"] = proba  # for the report; removed before metrics.json
    metrics["_splits"] = splits
    return metrics


def patient_labels(labels: np.ndarray, patients: np.ndarray, order: list[str]) -> np.ndarray:
    """A patient's label: its images' label (the maximum when they disagree, e.g. one positive slice)."""
    patients = np.asarray(patients).astype(str)
    out = [np.nanmax(labels[patients == p], axis=0) if labels.ndim == 2 else labels[patients == p].max()
           for p in order]
    return np.asarray(out)


def cohort_rows(data: ClassificationData, splits: np.ndarray, plan: ClassificationPlan) -> list[dict[str, Any]]:
    """Images (and patients) per split and class."""
    rows = []
    for split in ("train", "val", "test", "all"):
        mask = splits == split
        if not mask.any():
            continue
        row: dict[str, Any] = {"split": split, "images": int(mask.sum())}
        if data.patient_ids is not None:
            row["patients"] = int(len(np.unique(data.patient_ids[mask])))
        counts = (np.nansum(data.labels[mask], axis=0) if plan.task == "multilabel"
                  else np.bincount(data.labels[mask], minlength=len(plan.label_names)))
        row.update({f"class {name}": int(c) for name, c in zip(plan.label_names, counts, strict=True)})
        rows.append(row)
    return rows


def case_rows(data: ClassificationData, proba: np.ndarray, rows: np.ndarray, plan: ClassificationPlan,
              limit: int = 500) -> list[dict[str, Any]]:
    """Per image: id, truth, prediction, correct, and the predicted class's probability."""
    out = []
    for i in np.flatnonzero(rows)[:limit]:
        if plan.task == "multilabel":
            truth = ";".join(n for n, v in zip(plan.label_names, data.labels[i], strict=True) if v == 1)
            pred = ";".join(n for n, v in zip(plan.label_names, proba[i], strict=True) if v > 0.5)
            p = float(proba[i].max())
        else:
            truth, k = plan.label_names[int(data.labels[i])], int(proba[i].argmax())
            pred, p = plan.label_names[k], float(proba[i, k])
        out.append({"id": data.ids[i], "truth": truth, "prediction": pred, "correct": truth == pred,
                    "probability": p})
    return out


def write_report(path: Path, model: Classifier, data: ClassificationData, metrics: dict[str, Any],
                 run: RunDirectory | None, title: str) -> None:
    """Metrics with CIs, cohort, curves, ROC with its CI band, PR, confusion, calibration, cases, Grad-CAM."""
    plan = model.plan_
    proba, splits = metrics["_proba"], metrics["_splits"]
    report = Report(title, f"{Path(data.source).name} - {plan.task}, {len(plan.label_names)} classes, network "
                           f"{plan.network.name}, {plan.train.ensemble} member(s)")
    report.add_heading("Cohort")
    report.add_table(cohort_rows(data, splits, plan), caption="Images (and patients) per split and class")
    report.add_heading("Metrics")
    rows = [r for split in SPLIT_ORDER if split in metrics for r in summary_rows(metrics[split], split)]
    caption = "95% bootstrap confidence intervals in brackets (not estimable: too few cases or one class). "
    if run is not None:
        caption += ("The model also learnt from the val images (train.train_on_val): their metrics are not "
                    "unseen-data estimates." if plan.learns_from_val else "Selection used val only.")
    seen = metrics.get("seen_in_training", {}).get("items")
    if seen:
        report.add_paragraph(f"Warning: {seen} of {metrics['seen_in_training']['of']} evaluated images are images "
                             "the model learnt from (identical pixels): these metrics are optimistic.")
    report.add_table(rows, caption=caption)
    if "patient" in metrics:
        prow = [r for split in SPLIT_ORDER if split in metrics["patient"]
                for r in summary_rows(metrics["patient"][split], split)]
        report.add_heading("Patient-level metrics", 3)
        report.add_table(prow, caption=f"aggregation: {plan.patient.aggregation}")
    headline = next(s for s in ("test", "all", "val") if s in metrics)
    report.add_table(per_class_rows(metrics[headline]), caption=f"Per class ({headline})")
    threshold = metrics[headline].get("threshold")
    if threshold is not None:
        report.add_paragraph(f"Operating threshold: class-1 (or per-label) probability > {threshold:g} for the "
                             "accuracy, sensitivity and specificity above.")
    report.add_paragraph(f"Class imbalance ratio (train, majority/minority): {plan.imbalance.ratio} -> strategy "
                         f"'{plan.imbalance.strategy}'.")
    if run is not None:
        log_csv = next((p for p in (run.logs_dir / "metrics.csv", run.logs_dir / "member0" / "metrics.csv")
                        if p.exists()), None)
        if log_csv is not None:
            report.add_heading("Training")
            report.add_figure(plot_training_curves(log_csv), "training_curves", "Loss and validation metrics per epoch")
    rows = splits == headline
    y, p = data.labels[rows], proba[rows]
    report.add_heading(f"Evaluation ({headline})")
    report.add_figure(plot_roc(y, p, plan.task, plan.label_names, threshold=threshold), "roc",
                      "ROC curves (binary: 95% bootstrap band and the operating point)")
    report.add_figure(plot_precision_recall(y, p, plan.task, plan.label_names), "precision_recall",
                      "Precision-recall curves")
    cm = np.asarray(metrics[headline]["confusion_matrix"])
    if cm.ndim == 2:
        report.add_figure(plot_confusion_matrix(cm, plan.label_names), "confusion_matrix", "Confusion matrix")
    if plan.task != "multilabel":
        report.add_figure(plot_calibration(y, p), "calibration", "Reliability diagram (top-label)")
    _add_examples(report, model, data, rows, p)
    report.add_heading("Cases", 3)
    report.add_table(case_rows(data, proba, rows, plan), caption=f"Per image ({headline}; first 500)")
    report.add_heading("Plan", 3)
    report.add_preformatted(plan.describe())
    report.write(path)


def _add_examples(report: Report, model: Classifier, data: ClassificationData, rows: np.ndarray,
                  proba: np.ndarray) -> None:
    """Grad-CAM overlays on a few random evaluation images, 2D only."""
    plan = model.plan_
    if plan.spatial_dims != 2 or plan.network.name == "mlp" or not rows.any():
        return
    from medlearn.explain import grad_cam

    index = np.flatnonzero(rows)
    pred = proba.argmax(1)
    n = min(N_EXAMPLES, len(index))
    pick = np.random.default_rng(plan.train.seed).choice(len(index), size=n, replace=False)
    images = resize_all(data.images[index[pick]], plan.input_size)
    heat = grad_cam(model.net_, torch.from_numpy(model.normalise(images)))
    shown = [to_display(im) for im in images]
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
