"""Run-directory workflows for CPI: train (select on validation, test once), predict, evaluate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.cpi.api import AffinityModel
from medlearn.cpi.data import InteractionTable, describe_invalid, load_interactions
from medlearn.cpi.metrics import affinity_metrics
from medlearn.cpi.plan import CPIPlan
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError


@dataclass
class CPITrainOptions:
    data: str
    out: str
    dataset: str | None = None
    smiles_column: str | None = None
    sequence_column: str | None = None
    value_column: str | None = None
    overrides: list[str] | None = None
    plan_file: str | None = None
    seed: int = 0
    force: bool = False
    resume: bool = False
    progress: bool = True


def split_pairs(table: InteractionTable, plan: CPIPlan, seed: int) -> dict[str, np.ndarray]:
    """train/val/test pair indices.

    Davis/KIBA: validation = DeepDTA training fold ``plan.train.val_fold``, training = the other
    four, test = the test fold. CSV: its ``split`` column if present (validation carved from train
    when absent), else a seeded random split by pairs.
    """
    t = plan.train
    f = table.folds
    if "fold0" in f and "test" in f:
        n_folds = sum(k.startswith("fold") for k in f)
        if not 0 <= t.val_fold < n_folds:
            raise InputError("--set train.val_fold", f"must be in 0..{n_folds - 1}, got {t.val_fold}")
        train = np.concatenate([f[f"fold{k}"] for k in range(n_folds) if k != t.val_fold])
        return {"train": train, "val": f[f"fold{t.val_fold}"], "test": f["test"]}
    rng = np.random.default_rng(seed)
    if "train" in f:
        train = f["train"]
        val = f.get("val")
        if val is None:
            perm = rng.permutation(train)
            n_val = max(1, int(round(len(perm) * t.val_fraction)))
            val, train = perm[:n_val], perm[n_val:]
        return {"train": train, "val": val, "test": f.get("test", np.zeros(0, dtype=int))}
    perm = rng.permutation(len(table))
    n_val = max(1, int(round(len(perm) * t.val_fraction)))
    n_test = int(round(len(perm) * t.test_fraction))
    if len(perm) - n_val - n_test < 2:
        raise InputError(table.source, f"only {len(perm)} valid pairs", "give more rows to train on")
    return {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}


def _metrics(model: AffinityModel, table: InteractionTable, idx: np.ndarray,
             members: np.ndarray | None = None) -> dict:
    """Metrics of the (ensemble-mean) prediction; ``members`` ``(M, N)`` saves re-predicting."""
    pred = model.predict_table(table, idx) if members is None else members.mean(0)
    y = table.y[idx]
    if model.task_ == "classification":
        from sklearn.metrics import average_precision_score, roc_auc_score

        ok = len(np.unique(y)) == 2
        return {"roc_auc": float(roc_auc_score(y, pred)) if ok else float("nan"),
                "pr_auc": float(average_precision_score(y, pred)) if ok else float("nan"), "n": len(y)}
    return affinity_metrics(y, pred)


def train_cpi(opts: CPITrainOptions, echo: Callable[[str], None] = print) -> dict:
    from medlearn.engine.seed import configure_cpu_threads
    from medlearn.io import write_json
    from medlearn.plan import parse_overrides

    plan = CPIPlan().apply_overrides(parse_overrides(opts.overrides, opts.plan_file))
    table = load_interactions(opts.data, opts.dataset, smiles_column=opts.smiles_column,
                              sequence_column=opts.sequence_column, value_column=opts.value_column)
    note = describe_invalid(table)
    if note:
        echo(note)
    splits = split_pairs(table, plan, opts.seed)
    run = RunDirectory(Path(opts.out))
    resuming = run.prepare(force=opts.force, resume=opts.resume)
    configure_cpu_threads(plan.train.threads or None)
    echo(plan.describe())
    plan.save(run.plan_file)
    run.write_config({k: v for k, v in vars(opts).items() if k not in ("force", "resume", "progress")})
    run.write_versions(opts.seed)
    write_json(run.splits_file, {k: v.tolist() for k, v in splits.items()})
    t0 = time.perf_counter()
    model = AffinityModel(plan, opts.seed).fit(table, splits["train"], splits["val"], run, opts.progress,
                                               resuming, echo)
    train_seconds = time.perf_counter() - t0
    model.save(run.model_file, extra={"data": opts.data, "dataset": opts.dataset})
    metrics: dict = {"task": model.task_, "train_seconds": round(train_seconds, 1), "history": model.history_,
                     "n_pairs": {k: len(v) for k, v in splits.items()}}
    parts = ["val", "test"] if len(splits["test"]) else ["val"]
    per_part = {part: model.predict_members(table, splits[part]) for part in parts}
    for part in parts:
        metrics[part] = _metrics(model, table, splits[part], per_part[part])
    if len(model.nets_) > 1:
        metrics["ensemble"] = _ensemble_summary(model, table, splits, per_part)
    _write_report(run, metrics, model, table, splits)
    write_json(run.metrics_file, metrics)
    for part in ("val", "test"):
        if part in metrics:
            echo(f"{part}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics[part].items() if k != "n"))
    return metrics


def _ensemble_summary(model: AffinityModel, table: InteractionTable, splits: dict[str, np.ndarray],
                      per_part: dict[str, np.ndarray]) -> dict:
    """Per-member metrics and how well the member spread (std) ranks the absolute error."""
    from scipy.stats import spearmanr

    out: dict = {"members": len(model.nets_)}
    for part, preds in per_part.items():
        idx = splits[part]
        out[f"{part}_members"] = [_metrics(model, table, idx, p[None]) for p in preds]
        if model.task_ == "regression" and len(idx) > 2:
            std = preds.std(0)
            err = np.abs(preds.mean(0) - table.y[idx])
            out[f"{part}_spread"] = {"mean_std": float(std.mean()),
                                     "spearman_std_vs_abs_error": float(spearmanr(std, err).statistic)}
    return out


def _write_report(run: RunDirectory, metrics: dict, model: AffinityModel, table: InteractionTable,
                  splits: dict[str, np.ndarray]) -> None:
    from medlearn.evaluation.report import Report

    n = model.plan.net
    report = Report("Compound-protein interaction",
                    f"DeepDTA-style model ({n.compound} compound, {n.protein} protein branch, {n.head} head, "
                    f"{len(model.nets_)} member(s)), task {model.task_}")
    for part in ("val", "test"):
        if part in metrics:
            report.add_metrics(metrics[part], caption=f"{part} pairs")
    if model.task_ == "regression" and len(splits.get("test", [])):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        idx = splits["test"]
        pred = model.predict_table(table, idx)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(table.y[idx], pred, s=4, alpha=0.4)
        lo, hi = float(np.nanmin(table.y[idx])), float(np.nanmax(table.y[idx]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
        fig.tight_layout()
        report.add_figure(fig, "test_scatter", caption="Test pairs: predicted vs measured")
    curves = run.logs_dir / "metrics.csv"
    if not curves.exists():  # ensemble: the first member's curves
        curves = run.logs_dir / "member0" / "metrics.csv"
    report.add_training_curves(curves)
    report.write(run.report_file)


def predict_cpi(run_path: str | Path, data: str | Path, out: str | Path, smiles_column: str | None = None,
                sequence_column: str | None = None) -> int:
    """Write ``data`` rows with a ``prediction`` column to ``out`` (invalid rows get an empty one).

    An ensemble also writes ``prediction_std``, the spread of its members (an uncertainty).
    """
    from medlearn.chem.data import read_csv
    from medlearn.cpi.data import load_pairs_csv
    from medlearn.io import atomic_path

    run = RunDirectory(Path(run_path)).require_finished()
    model = AffinityModel.load(run.model_file)
    table = load_pairs_csv(data, smiles_column, sequence_column, None, require_values=False)
    pred, std = model.predict_table(table, return_std=True)
    df = read_csv(data)
    col = np.full(len(df), np.nan)
    col[table.rows] = pred
    df["prediction"] = col
    if len(model.nets_) > 1:
        col_std = np.full(len(df), np.nan)
        col_std[table.rows] = std
        df["prediction_std"] = col_std
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return len(table.rows)


def evaluate_cpi(run_path: str | Path, data: str | Path, dataset: str | None = None,
                 smiles_column: str | None = None, sequence_column: str | None = None,
                 value_column: str | None = None) -> dict:
    """Metrics of a run on ``data``: a CSV of pairs (all rows), or Davis/KIBA (the test fold)."""
    from medlearn.io import write_json

    run = RunDirectory(Path(run_path)).require_finished()
    model = AffinityModel.load(run.model_file)
    table = load_interactions(data, dataset, smiles_column=smiles_column, sequence_column=sequence_column,
                              value_column=value_column)
    idx = table.folds.get("test") if "fold0" in table.folds else None
    idx = np.arange(len(table)) if idx is None else idx
    metrics = {"data": str(data), **_metrics(model, table, idx)}
    write_json(run.path / "evaluation.json", metrics)
    return metrics
