"""QSAR evaluation: metrics per split with 95% CIs over molecules, and the report's sections.

A training run scores its ``train`` (a fit, no CI: not an estimate), ``val`` (used for model choice and
early stopping) and ``test`` splits; ``evaluate RUN DATA`` scores every molecule of ``DATA`` (``all``)
and, when some of them are molecules the model learnt from (same canonical SMILES), also the ``unseen``
rest. Metrics: :func:`~medlearn.evaluation.regression.regression_metrics` (RMSE, MAE, R²) or
:func:`~medlearn.evaluation.multitask.multitask_binary_metrics` (ROC-AUC, PR-AUC), NaN-masked per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.evaluation.multitask import multitask_binary_metrics
from medlearn.evaluation.regression import regression_metrics
from medlearn.evaluation.report import Report
from medlearn.tasks.qsar.data import QSARDataset, molecule_keys
from medlearn.tasks.qsar.model import UNCERTAINTY

if TYPE_CHECKING:
    from medlearn.data.splits import Splits
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.qsar.model import QSARModel

SPLIT_ORDER = ("train", "val", "test", "all", "unseen")
KEYS = {"regression": ("rmse", "mae", "r2"), "classification": ("roc_auc", "pr_auc")}


def headline_metric(task_type: str) -> str:
    return "roc_auc" if task_type == "classification" else "rmse"


def split_metrics(task_type: str, y: np.ndarray, pred: np.ndarray, targets: list[str], n_boot: int,
                  seed: int) -> dict[str, Any]:
    """The task type's metrics on one set of molecules (``y``, ``pred``: ``(N, T)``)."""
    if task_type == "classification":
        return multitask_binary_metrics(y, pred, targets, n_boot, seed, unit="molecule")
    return regression_metrics(y, pred, targets, n_boot, seed, unit="molecule")


def seen_splits(model: QSARModel, data: QSARDataset) -> np.ndarray:
    """``(N,)``: "train" / "val" where a molecule of ``data`` is one the model learnt from or was selected
    on (same canonical SMILES), else "" (cached on ``data``)."""
    if data.seen is None:
        lookup = {key: split for split in ("val", "train") for key in model.seen_.get(split, [])}
        data.seen = np.asarray([lookup.get(k, "") if k else "" for k in molecule_keys(data.table.smiles)],
                               dtype=object)
    return data.seen


def evaluate_model(model: QSARModel, data: QSARDataset, splits: Splits | None, n_boot: int) -> dict[str, Any]:
    """Metrics per split present (a run's train/val/test; evaluation: ``all`` and ``unseen``)."""
    plan = model.plan_
    task_type, targets = plan.data.task_type, list(plan.data.targets)
    mean, std = model.predict_with_uncertainty(data.table.smiles)
    y = data.table.y
    if splits is not None:
        assignment = np.asarray(splits.assignment, dtype=object)
        parts = {s: assignment == s for s in ("train", "val", "test")}
    else:
        seen = seen_splits(model, data)
        assignment = np.full(len(data), "all", dtype=object)
        parts = {"all": np.ones(len(data), dtype=bool)}
        if 0 < int((seen != "").sum()) < len(data):
            parts["unseen"] = seen == ""
    metrics: dict[str, Any] = {"task_type": task_type, "targets": targets, "metric": headline_metric(task_type)}
    for name, rows in parts.items():
        if rows.any():
            # a fit on the training molecules is no estimate of anything: no CI there
            metrics[name] = split_metrics(task_type, y[rows], mean[rows], targets, 0 if name == "train" else n_boot,
                                          plan.train.seed)
    metrics["model"] = model.describe()
    metrics["invalid_rows"] = list(data.table.invalid_rows)
    if splits is not None:
        metrics["training"] = {"molecules_trained_on": int(parts["train"].sum())}
    metrics["_pred"], metrics["_std"], metrics["_splits"] = mean, std, assignment
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The printed numbers: the task type's metrics of val / test (or all / unseen), CIs included."""
    from medlearn.evaluation.report import format_value

    keys = KEYS.get(metrics.get("task_type", "regression"), ())
    return {split: {k: format_value(metrics[split][k]) for k in keys if k in metrics[split]}
            for split in ("val", "test", "all", "unseen") if split in metrics}


# -- report ---------------------------------------------------------------------------------------------------
def write_report(path: Path, model: QSARModel, data: QSARDataset, metrics: dict[str, Any], run: RunDirectory | None,
                 title: str) -> None:
    """Cohort, metrics with CIs (per task for several), the model's choice and uncertainty, parity plot or
    ROC curves, training curves of a neural member, the plan."""
    plan = model.plan_
    task_type, targets = plan.data.task_type, list(plan.data.targets)
    pred, splits = metrics["_pred"], metrics["_splits"]
    kept = " + ".join(metrics["model"]["kept"])
    report = Report(title, f"{Path(data.source).name} - {task_type}, {len(targets)} target(s): "
                           f"{', '.join(targets)}; model {plan.network.name} (kept: {kept})")
    if data.table.invalid_rows:
        rows = data.table.invalid_rows
        shown = ", ".join(map(str, rows[:20])) + (" ..." if len(rows) > 20 else "")
        report.add_paragraph(f"Skipped {len(rows)} invalid SMILES at CSV row(s) {shown}.")
    seen = metrics.get("seen_in_training", {}).get("items")
    if seen:
        marks = seen_splits(model, data)
        report.add_paragraph(f"Warning: {seen} of {metrics['seen_in_training']['of']} evaluated molecules are "
                             f"molecules the model learnt from ({int((marks == 'train').sum())} in its training "
                             f"split, {int((marks == 'val').sum())} in its validation split, used for early stopping "
                             "and model choice; same canonical SMILES): the 'all' metrics are optimistic"
                             + ("; 'unseen' scores the rest." if "unseen" in metrics else "."))
    report.add_heading("Cohort")
    report.add_table(_cohort_rows(data, splits, task_type, targets), caption="Molecules per split")
    report.add_heading("Metrics")
    keys = KEYS[task_type]
    names = [s for s in SPLIT_ORDER if s in metrics]
    caption = ("95% bootstrap CIs over molecules in brackets (train: a fit, no CI). " if "train" in metrics else
               "95% bootstrap CIs over molecules in brackets. ")
    if task_type == "classification":
        caption += "ROC-AUC and PR-AUC are means over the tasks with both classes present."
    report.add_table([{"split": s, "molecules": metrics[s]["n"], **{k: metrics[s][k] for k in keys}} for s in names],
                     caption=caption)
    focus = next(s for s in ("test", "unseen", "all", "val", "train") if s in metrics)
    if len(targets) > 1:
        report.add_table([{"task": t, "n": v.get("n"), **{k: v.get(k) for k in keys},
                           **({"skipped": v["skipped"]} if "skipped" in v else {})}
                          for t, v in metrics[focus]["per_task"].items()], caption=f"Per task ({focus})")
    _model_section(report, model, metrics)
    rows = splits == focus if focus not in ("all", "unseen") else np.ones(len(data), dtype=bool)
    if focus == "unseen":
        rows = seen_splits(model, data) == ""
    y, p = data.table.y[rows], pred[rows]
    if task_type == "regression":
        report.add_figure(_parity(y, p, targets), "parity", caption=f"{focus}: predicted vs measured")
    else:
        from medlearn.evaluation.plots import plot_roc

        single = y.shape[1] == 1 and not np.isnan(y).any()
        curve_task = "binary" if single else "multilabel"
        report.add_figure(plot_roc(y[:, 0] if single else y, p[:, 0] if single else p, curve_task,
                                   ["0", targets[0]] if single else targets[:12], ax_title=f"ROC ({focus})"),
                          "roc", caption=f"{focus}: ROC curves (AUC in the legend)")
    if run is not None:
        _training_curves(report, run, metrics.get("training", {}).get("per_member", []))
    report.add_heading("Plan", 3)
    report.add_preformatted(plan.describe())
    report.write(path)


def _cohort_rows(data: QSARDataset, splits: np.ndarray, task_type: str, targets: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in SPLIT_ORDER[:4]:
        mask = splits == name
        if not mask.any():
            continue
        row: dict[str, Any] = {"split": name, "molecules": int(mask.sum())}
        y = data.table.y[mask]
        for j, target in enumerate(targets[:12]):
            labelled = ~np.isnan(y[:, j])
            row[f"{target} labelled"] = int(labelled.sum())
            if task_type == "classification":
                row[f"{target} positives"] = int(np.nansum(y[:, j]))
        out.append(row)
    return out


def _model_section(report: Report, model: QSARModel, metrics: dict[str, Any]) -> None:
    described = metrics["model"]
    report.add_heading("Model")
    selection = described["selection"]
    metric = selection.get("metric", headline_metric(described["task_type"]))
    if described["candidates"]:
        report.add_table([{"candidate": c["kind"], "seed": c["seed"], f"val {metric}": c.get("val_score")}
                          for c in described["candidates"]],
                         caption=f"Trained members, scored on the validation molecules; kept: "
                                 f"{' + '.join(described['kept'])}")
    if selection.get("options"):
        report.add_table([{"option": k, f"val {metric}": v} for k, v in selection["options"].items()],
                         caption="Options compared on validation (best single, mean of best 2, mean of best 3)")
    report.add_paragraph(f"Uncertainty ({described['uncertainty']}): {UNCERTAINTY[described['uncertainty']]}. "
                         f"Applicability domain: {described['applicability_domain']}. Features: "
                         f"{described['features']}.")


def _parity(y: np.ndarray, p: np.ndarray, targets: list[str]) -> Any:
    from matplotlib.figure import Figure

    n = min(4, y.shape[1])
    fig = Figure(figsize=(4 * n, 4))
    axes = fig.subplots(1, n, squeeze=False)
    for j in range(n):
        m = ~np.isnan(y[:, j])
        ax = axes[0, j]
        if m.any():
            ax.scatter(y[m, j], p[m, j], s=8, alpha=0.6)
            lo, hi = float(min(y[m, j].min(), p[m, j].min())), float(max(y[m, j].max(), p[m, j].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
        ax.set_title(targets[j][:30])
    return fig


def _training_curves(report: Report, run: RunDirectory, per_member: list[dict[str, Any]]) -> None:
    """The training curves of the first neural member (its CSV log)."""
    from medlearn.tasks.qsar.plan import NEURAL

    for k, summary in enumerate(per_member):
        if summary.get("kind") in NEURAL:
            tag = run.member_tag(k, len(per_member))
            log = run.logs_dir / tag / "metrics.csv" if tag else run.logs_dir / "metrics.csv"
            report.add_heading("Training")
            report.add_training_curves(log, caption=f"{summary['kind']} (seed {summary.get('seed')}): loss and "
                                                    "validation score per epoch")
            return
