"""QSAR run-directory workflows behind ``medlearn qsar train|predict|evaluate|compare``.

A training run writes ``plan.json`` (the decisions: split, features, model, candidates),
``config.yaml`` (what was asked), ``splits.json`` (CSV row numbers), ``model.pt`` (the fitted
:class:`~medlearn.chem.api.QSARModel` with its featurisation and label names), ``report.html`` (+ PNG
plots), ``versions.json`` and, last, ``metrics.json`` keyed by split (``train``/``val``/``test``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medlearn.chem.api import QSARModel, load_model, save_model
from medlearn.chem.data import MoleculeTable, describe_invalid, load_smiles_csv
from medlearn.chem.splits import make_split, split_to_rows
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.io import atomic_path, write_json
from medlearn.plan import Plan, parse_overrides


@dataclass
class QSARPlan(Plan):
    """Every choice of a QSAR run (saved as plan.json, printed before training).

    The model fields (``model`` ... ``n_estimators``) are overridable with ``--set key=value`` or a
    YAML ``--plan`` file; the data fields (``data`` ... ``seed``, ``sizes``, ``invalid_rows``) are
    decided by the CLI options and the data, so they are read-only here.
    """

    data: str = ""
    smiles_column: str = "smiles"
    targets: list[str] = field(default_factory=list)
    task_type: str = "regression"
    split: str = "random"
    seed: int = 0
    model: str = "auto"
    features: str = "morgan_count+rdkit2d"
    radius: int = 2
    n_bits: int = 2048
    n_seeds: int = 1
    max_epochs: int = 100
    patience: int = 15
    n_estimators: int = 200
    sizes: dict = field(default_factory=dict)
    invalid_rows: list[int] = field(default_factory=list)


DATA_FIELDS = ("data", "smiles_column", "targets", "task_type", "split", "seed", "sizes", "invalid_rows")


def apply_plan_overrides(plan: QSARPlan, items: list[str] | None, plan_file: str | Path | None) -> QSARPlan:
    """``--set`` items and a ``--plan`` YAML applied to the model fields of ``plan``."""
    overrides = parse_overrides(items, plan_file)
    fixed = [k for k in overrides if k in DATA_FIELDS]
    if fixed:
        raise InputError("--set", f"'{fixed[0]}' is decided by the data and the CLI options",
                         "use --split/--seed/--target/--task/--smiles instead")
    return plan.apply_overrides(overrides)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


def _model_from_plan(plan: QSARPlan, model: str | None = None, verbose: bool = False) -> QSARModel:
    return QSARModel(model=model or plan.model, task_type=plan.task_type, features=plan.features,
                     radius=plan.radius, n_bits=plan.n_bits, n_seeds=plan.n_seeds, seed=plan.seed,
                     max_epochs=plan.max_epochs, patience=plan.patience, n_estimators=plan.n_estimators,
                     verbose=verbose)


def plan_run(table: MoleculeTable, data: str, smiles_column: str, split: str, seed: int, task_type: str | None,
             set_items: list[str] | None = None, plan_file: str | Path | None = None,
             **overrides) -> tuple[QSARPlan, dict[str, np.ndarray]]:
    from medlearn.chem.data import infer_task_type

    tt = task_type or infer_task_type(table.y)
    parts = make_split(table, split, seed)
    if len(parts["train"]) == 0:
        raise InputError(data, "the split leaves no training molecules", "use more data or another --split")
    plan = QSARPlan(data=str(data), smiles_column=smiles_column, targets=list(table.targets), task_type=tt,
                    split=split, seed=seed, sizes={k: int(len(v)) for k, v in parts.items()},
                    invalid_rows=list(table.invalid_rows),
                    **{k: v for k, v in overrides.items() if v is not None})
    return apply_plan_overrides(plan, set_items, plan_file), parts


def train_run(data: str | Path, out: str | Path, smiles_column: str | None = None, targets: list[str] | None = None,
              split: str = "random", seed: int = 0, task_type: str | None = None, force: bool = False,
              resume: bool = False, quiet: bool = False, set_items: list[str] | None = None,
              plan_file: str | Path | None = None, **overrides) -> dict:
    """Train a QSAR model into run directory ``out``; returns metrics (also in ``metrics.json``).

    ``resume``: QSAR training is short, so an interrupted run is retrained from the start into the
    same folder (nothing finished is overwritten without ``force``).
    """
    table = load_smiles_csv(data, smiles_column, targets)
    smiles_column = smiles_column or "smiles"
    msg = describe_invalid(table)
    if msg:
        _log(f"warning: {msg}", quiet)
    plan, parts = plan_run(table, str(data), smiles_column, split, seed, task_type, set_items, plan_file,
                           **overrides)
    run = RunDirectory(Path(out))
    run.prepare(force=force, resume=resume)
    plan.save(run.plan_file)
    run.write_config({"data": str(data), "smiles": smiles_column, "targets": plan.targets, "split": split,
                      "seed": seed, "task": task_type, "set": list(set_items or []),
                      "plan": str(plan_file) if plan_file else None,
                      **{k: v for k, v in overrides.items() if v is not None}})
    _log(plan.describe().rstrip(), quiet)
    write_json(run.splits_file, split_to_rows(parts, table))
    _log(f"plan: {plan.task_type}, {len(plan.targets)} task(s), split {split} "
         f"{plan.sizes['train']}/{plan.sizes['val']}/{plan.sizes['test']}, model {plan.model}, "
         f"features {plan.features}", quiet)
    from medlearn.engine.seed import seed_everything

    seed_everything(seed)
    tr, va = parts["train"], parts["val"]
    t0, c0 = time.time(), time.process_time()
    model = _model_from_plan(plan, verbose=not quiet)
    sm = table.smiles
    model.fit([sm[i] for i in tr], table.y[tr], [sm[i] for i in va] if len(va) else None,
              table.y[va] if len(va) else None)
    wall, cpu = time.time() - t0, time.process_time() - c0
    save_model(model, run.model_file, {"plan": plan.to_dict()})
    metrics: dict = {}
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, idx in parts.items():
        if len(idx) == 0:
            continue
        p = model.predict_values([sm[i] for i in idx])
        preds[name] = (table.y[idx], p)
        metrics[name] = _metrics(model, table.y[idx], p, plan.targets)
    metrics["model"] = model.describe()
    metrics["fit_seconds"] = {"wall": round(wall, 2), "cpu": round(cpu, 2)}
    write_json(run.logs_dir / "fit.json", {"model": metrics["model"], "fit_seconds": metrics["fit_seconds"]})
    run.write_versions(seed)
    write_report(run.report_file, plan, metrics, preds)
    write_json(run.metrics_file, metrics)  # last: the run is finished
    if "test" in metrics:
        key = "roc_auc" if plan.task_type == "classification" else "rmse"
        _log(f"test {key}: {metrics['test'][key]:.4f}  (run: {run.path})", quiet)
    return metrics


def _metrics(model: QSARModel, y: np.ndarray, p: np.ndarray, names: list[str]) -> dict:
    from medlearn.chem.metrics import qsar_metrics

    return qsar_metrics(model.task_type_, y, p, names)


def write_report(path: Path, plan: QSARPlan, metrics: dict, preds: dict) -> None:
    """HTML report: plan, metrics per split, model choice, parity plot or ROC curves on test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medlearn.evaluation.report import Report

    rep = Report(f"QSAR: {Path(plan.data).name}", f"{plan.task_type}, targets {', '.join(plan.targets)}")
    rep.add_heading("Plan")
    rep.add_table([{"field": k, "value": str(v)} for k, v in plan.to_dict().items() if k != "invalid_rows"])
    if plan.invalid_rows:
        shown = ", ".join(map(str, plan.invalid_rows[:20])) + (" ..." if len(plan.invalid_rows) > 20 else "")
        rep.add_paragraph(f"Skipped {len(plan.invalid_rows)} invalid SMILES at rows {shown}.")
    rep.add_heading("Metrics")
    keys = ("roc_auc", "pr_auc") if plan.task_type == "classification" else ("rmse", "mae", "r2")
    rep.add_table([{"split": s, **{k: metrics[s][k] for k in keys}} for s in ("train", "val", "test") if s in metrics])
    if "test" in metrics and len(plan.targets) > 1:
        rep.add_table([{"task": t, **{k: v.get(k) for k in keys}, "n": v.get("n")}
                       for t, v in metrics["test"]["per_task"].items()], caption="test, per task")
    rep.add_heading("Model")
    desc = metrics["model"]
    rep.add_table([{"candidate": c["kind"], "seed": c["seed"], "val score": c["val_score"]}
                   for c in desc["candidates"]], caption=f"candidates; kept: {' + '.join(desc['selection']['chosen'])}")
    split = "test" if "test" in preds else next(iter(preds))
    y, p = preds[split]
    if plan.task_type == "regression":
        n = min(4, y.shape[1])
        fig, axes = plt.subplots(1, n, figsize=(4 * n, 4), squeeze=False)
        for j in range(n):
            m = ~np.isnan(y[:, j])
            ax = axes[0, j]
            ax.scatter(y[m, j], p[m, j], s=8, alpha=0.6)
            lo, hi = np.nanmin([y[m, j].min(), p[m, j].min()]), np.nanmax([y[m, j].max(), p[m, j].max()])
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set_xlabel("measured")
            ax.set_ylabel("predicted")
            ax.set_title(plan.targets[j][:30])
        rep.add_figure(fig, "parity", caption=f"{split}: predicted vs measured")
    else:
        from sklearn.metrics import roc_curve

        fig, ax = plt.subplots(figsize=(5, 5))
        for j in range(min(12, y.shape[1])):
            m = ~np.isnan(y[:, j])
            if len(np.unique(y[m, j])) < 2:
                continue
            fpr, tpr, _ = roc_curve(y[m, j], p[m, j])
            ax.plot(fpr, tpr, lw=1, label=plan.targets[j][:25])
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=7)
        rep.add_figure(fig, "roc", caption=f"{split}: ROC curves")
    plt.close("all")
    rep.write(path)


def _load_run(run_path: str | Path) -> tuple[RunDirectory, QSARModel, dict]:
    run = RunDirectory(Path(run_path)).require_finished()
    model, blob = load_model(run.model_file)
    return run, model, blob.get("plan", {})


def predict_run(run_path: str | Path, data: str | Path, out: str | Path, smiles_column: str | None = None,
                quiet: bool = False) -> pd.DataFrame:
    """Predictions for every row of ``data`` written to ``out`` (CSV): the input columns, then per
    target ``<t>_pred`` (probability for classification), ``<t>_std`` (ensemble spread), and
    ``applicability_domain`` (max Tanimoto to training). Invalid SMILES rows keep empty predictions."""
    _, model, plan = _load_run(run_path)
    col = smiles_column or plan.get("smiles_column") or "smiles"
    table = load_smiles_csv(data, col, [], require_targets=False)
    msg = describe_invalid(table)
    if msg:
        _log(f"warning: {msg}", quiet)
    from medlearn.chem.data import read_csv

    df = read_csv(data)
    mean, std = model.predict_with_uncertainty(table.smiles)
    ad = model.applicability_domain(table.smiles)
    for j, t in enumerate(plan.get("targets", [f"task{j}" for j in range(mean.shape[1])])):
        for suffix, arr in (("pred", mean[:, j]), ("std", std[:, j])):
            colv = np.full(len(df), np.nan)
            colv[table.rows] = arr
            df[f"{t}_{suffix}"] = colv
    adv = np.full(len(df), np.nan)
    adv[table.rows] = ad
    df["applicability_domain"] = adv
    with atomic_path(out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    _log(f"wrote {len(table)} predictions to {out}", quiet)
    return df


def evaluate_run(run_path: str | Path, data: str | Path, smiles_column: str | None = None,
                 out: str | Path | None = None, quiet: bool = False) -> dict:
    """Metrics of a trained run on a labelled CSV (the run's target columns must be present)."""
    _, model, plan = _load_run(run_path)
    table = load_smiles_csv(data, smiles_column or plan.get("smiles_column"), plan.get("targets"))
    p = model.predict_values(table.smiles)
    metrics = _metrics(model, table.y, p, plan.get("targets"))
    metrics["n"] = len(table)
    metrics["invalid_rows"] = table.invalid_rows
    if out:
        write_json(out, metrics)
    return metrics


def compare_run(data: str | Path, out: str | Path, smiles_column: str | None = None, targets: list[str] | None = None,
                split: str = "random", seed: int = 0, task_type: str | None = None, models: list[str] | None = None,
                force: bool = False, quiet: bool = False, set_items: list[str] | None = None,
                plan_file: str | Path | None = None, **overrides) -> list[dict]:
    """Train every model on the same split; write ``comparison.json``, ``comparison.md``,
    ``comparison.png`` and ``report.html`` into ``out``."""
    from medlearn.chem.baselines import baselines_for

    table = load_smiles_csv(data, smiles_column, targets)
    msg = describe_invalid(table)
    if msg:
        _log(f"warning: {msg}", quiet)
    plan, parts = plan_run(table, str(data), smiles_column or "smiles", split, seed, task_type, set_items, plan_file,
                           **overrides)
    out = Path(out)
    if (out / "comparison.json").exists() and not force:
        raise InputError(out, "a finished comparison is already here", "pass --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    models = models or ["dnn", "mpnn", *baselines_for(plan.task_type), "auto"]
    sm = table.smiles
    tr, va, te = parts["train"], parts["val"], parts["test"]
    rows = []
    for name in models:
        t0, c0 = time.time(), time.process_time()
        model = _model_from_plan(plan, model=name)
        model.fit([sm[i] for i in tr], table.y[tr], [sm[i] for i in va] if len(va) else None,
                  table.y[va] if len(va) else None)
        row = {"model": name, "cpu_s": round(time.process_time() - c0, 1), "wall_s": round(time.time() - t0, 1)}
        for part, idx in (("val", va), ("test", te)):
            if len(idx):
                m = _metrics(model, table.y[idx], model.predict_values([sm[i] for i in idx]), plan.targets)
                for k in (("roc_auc", "pr_auc") if plan.task_type == "classification" else ("rmse", "mae", "r2")):
                    row[f"{part}_{k}"] = m[k]
        rows.append(row)
        _log(f"  {name}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in row.items() if k != "model"), quiet)
    write_json(out / "comparison.json", {"plan": plan.to_dict(), "rows": rows})
    keys = list(rows[0].keys())
    md = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
           for r in rows]
    from medlearn.io import write_text

    write_text(out / "comparison.md", "\n".join(md) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medlearn.evaluation.report import Report

    metric = "test_roc_auc" if plan.task_type == "classification" else "test_rmse"
    fig, ax = plt.subplots(figsize=(max(5, len(rows) * 0.8), 4))
    ax.bar([r["model"] for r in rows], [r.get(metric, np.nan) for r in rows])
    ax.set_ylabel(metric)
    ax.set_title(f"{Path(str(data)).name}, split {split}")
    with atomic_path(out / "comparison.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    rep = Report(f"QSAR comparison: {Path(str(data)).name}", f"split {split}, seed {seed}")
    rep.add_table(rows, caption="same split for every model; val used only for early stopping / model choice")
    rep.add_figure(fig, "comparison", caption=metric)
    plt.close("all")
    rep.write(out / "report.html")
    return rows
