"""CPI evaluation: metrics per split with 95% bootstrap CIs over pairs, the ensemble's members and
spread, and the report sections (metrics, predicted vs measured, training curves, plan)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.evaluation.affinity import affinity_metrics, affinity_metrics_ci, interaction_metrics_ci
from medlearn.evaluation.report import Report
from medlearn.tasks.cpi.data import COLD_UNITS, InteractionTable, cold_groups

if TYPE_CHECKING:
    from medlearn.data.splits import Splits
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.cpi.model import AffinityModel

SPLIT_ORDER = ("val", "test", "all")


def evaluation_parts(table: InteractionTable, splits: Splits | None) -> dict[str, np.ndarray]:
    """Pair positions to score: a run's val/test; else Davis/KIBA's test fold, or every pair of a CSV."""
    if splits is not None:
        return {s: splits.indices(s) for s in ("val", "test") if splits.mask(s).any()}
    if "fold0" in table.folds and "test" in table.folds:
        return {"test": np.sort(np.asarray(table.folds["test"], dtype=int))}  # the order a run's splits give
    return {"all": np.arange(len(table))}


def split_metrics(task: str, y: np.ndarray, pred: np.ndarray, n_boot: int, seed: int,
                  groups: np.ndarray | None = None) -> dict[str, Any]:
    """Headline metrics with CIs: CI / MSE / r_m^2 / Pearson (affinities) or ROC / PR AUC (0/1); ``groups``
    (a cold split's held-out compound or protein per pair): the bootstrap resamples those."""
    if task == "classification":
        return interaction_metrics_ci(y, pred, n_boot, seed, groups)
    return affinity_metrics_ci(y, pred, n_boot, seed, groups)


def member_metrics(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Point estimates of one member (no CIs: the members are context for the ensemble's numbers)."""
    if task == "classification":
        return {k: (v["value"] if isinstance(v, dict) else v) for k, v in interaction_metrics_ci(y, pred, 0).items()}
    return affinity_metrics(y, pred)


def evaluate_model(model: AffinityModel, table: InteractionTable, splits: Splits | None, n_boot: int
                   ) -> dict[str, Any]:
    """Metrics of the ensemble mean per split; for an ensemble also each member's and how well the
    members' spread ranks the absolute error. ``_predictions`` / ``_parts`` (for the report) are not saved."""
    from scipy.stats import spearmanr

    seed = model.plan_.train.seed
    metrics: dict[str, Any] = {"problem": model.task_}
    ensemble: dict[str, Any] = {"members": len(model.nets_)}
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    cold = model.plan_.data.split
    groups = cold_groups(table, cold) if splits is not None else None  # a run's own cold split: CIs over groups
    for part, idx in evaluation_parts(table, splits).items():
        preds = model.predict_members(table, idx)  # (M, N)
        mean, y = preds.mean(0), table.y[idx]
        metrics[part] = split_metrics(model.task_, y, mean, n_boot, seed, None if groups is None else groups[idx])
        if groups is not None:
            metrics[part]["ci_unit"] = COLD_UNITS[cold]
        predictions[part] = (idx, mean)
        if len(model.nets_) > 1:
            ensemble[f"{part}_members"] = [member_metrics(model.task_, y, p) for p in preds]
            if model.task_ == "regression" and len(idx) > 2:
                std = preds.std(0)
                rho = spearmanr(std, np.abs(mean - y)).statistic
                ensemble[f"{part}_spread"] = {"mean_std": float(std.mean()),
                                              "spearman_std_vs_abs_error": float(rho)}
    if len(model.nets_) > 1:
        metrics["ensemble"] = ensemble
    parts = {s: idx for s, (idx, _) in predictions.items()}
    if splits is not None:
        metrics["n_pairs"] = splits.sizes()
        parts = {s: splits.indices(s) for s in ("train", "val", "test") if splits.mask(s).any()}
    if table.invalid_rows:
        metrics["skipped_rows"] = {"count": len(table.invalid_rows), "first": table.invalid_rows[:10]}
    metrics["_predictions"], metrics["_parts"] = predictions, parts
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers printed after training or evaluation: per split, "v [lo, hi]"."""
    from medlearn.evaluation.report import format_value

    keys = ("ci", "mse", "rm2") if metrics.get("problem") != "classification" else ("roc_auc", "pr_auc")
    return {split: {k: format_value(metrics[split][k]) for k in keys if k in metrics[split]}
            for split in SPLIT_ORDER if split in metrics}


def write_report(path: Path, model: AffinityModel, table: InteractionTable, metrics: dict[str, Any],
                 run: RunDirectory | None, title: str) -> None:
    """Pairs per split, metrics with CIs, the ensemble, predicted vs measured, training curves, the plan."""
    n = model.plan_.network
    report = Report(title, f"{Path(table.source).name}: DeepDTA-style model ({n.compound} compound, {n.protein} "
                           f"protein branch, {n.head} head, {len(model.nets_)} member(s)), {model.task_}")
    predictions = metrics.get("_predictions", {})
    report.add_heading("Pairs")
    rows = [{"split": s, "pairs": len(idx), "compounds": len(np.unique(table.drug[idx])),
             "proteins": len(np.unique(table.protein[idx]))} for s, idx in metrics.get("_parts", {}).items()]
    report.add_table(rows, caption=f"{len(table)} valid pairs, {len(table.smiles)} compounds, "
                                   f"{len(table.sequences)} proteins")
    if "skipped_rows" in metrics:
        report.add_paragraph(f"{metrics['skipped_rows']['count']} row(s) skipped for an invalid SMILES, sequence or "
                             f"value (first: {metrics['skipped_rows']['first']}).")
    seen = metrics.get("seen_in_training", {}).get("items")
    if seen:
        report.add_paragraph(f"Warning: {seen} of {metrics['seen_in_training']['of']} evaluated pairs are pairs the "
                             "model trained or was selected on: these metrics are optimistic.")
    report.add_heading("Metrics")
    for split in SPLIT_ORDER:
        if split in metrics:
            report.add_metrics(metrics[split], caption=f"{split} pairs (95% bootstrap CIs over pairs)")
    ensemble = metrics.get("ensemble", {})
    rows = [{"split": s, "member": k, **m} for s in SPLIT_ORDER for k, m in enumerate(ensemble.get(f"{s}_members", []))]
    if rows:
        report.add_table(rows, caption="Each member alone (the ensemble averages them)")
    for split in SPLIT_ORDER:
        if f"{split}_spread" in ensemble:
            sp = ensemble[f"{split}_spread"]
            report.add_paragraph(f"Member spread as uncertainty ({split}): mean sd {sp['mean_std']:.3f}; "
                                 f"Spearman(sd, |error|) = {sp['spearman_std_vs_abs_error']:.3f}.")
    shown = next((s for s in ("test", "all", "val") if s in predictions), None)
    if model.task_ == "regression" and shown is not None:
        report.add_figure(_scatter(table.y[predictions[shown][0]], predictions[shown][1]), f"{shown}_scatter",
                          caption=f"{shown} pairs: predicted vs measured")
    if run is not None:
        log = next((p for p in (run.logs_dir / "metrics.csv", run.logs_dir / "member0" / "metrics.csv")
                    if p.exists()), None)
        if log is not None:
            report.add_heading("Training")
            report.add_training_curves(log, caption="Loss and validation metrics per epoch (first member)")
    report.add_heading("Plan", 3)
    report.add_preformatted(model.plan_.describe())
    report.write(path)


def _scatter(y: np.ndarray, pred: np.ndarray) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(y, pred, s=4, alpha=0.4)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("measured")
    ax.set_ylabel("predicted")
    fig.tight_layout()
    return fig
