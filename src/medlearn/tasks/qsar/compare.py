"""``qsar compare``: every model on one split, through the same members as a training run.

The data are read, split, planned and featurised once; each model (``network.name``) then trains its
members with the engine (:func:`medlearn.engine.members.train_members`, in ``OUT/models/<name>/``) and is
assembled as a run would be. ``OUT`` gets ``comparison.json`` (the plan and one row per model),
``comparison.md``, ``comparison.png`` and ``report.html``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import RunExistsError
from medlearn.tasks.base import Echo, TrainRequest

MODELS_DIR = "models"


def _cpu_seconds() -> float:
    """CPU time of this process and its finished workers."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def default_models(task_type: str) -> list[str]:
    from medlearn.tasks.qsar.baselines import baselines_for

    return ["dnn", "mpnn", *baselines_for(task_type), "auto"]


def compare_models(request: TrainRequest, models: list[str] | None = None, echo: Echo = print) -> list[dict[str, Any]]:
    """Train and score ``models`` (default: dnn, mpnn, every baseline, auto) on one split of ``request.data``."""
    from medlearn.engine.members import train_members
    from medlearn.engine.rundir import RunDirectory
    from medlearn.engine.seed import configure_cpu_threads, seed_everything
    from medlearn.plan import parse_overrides
    from medlearn.tasks.qsar.evaluate import KEYS, headline_metric, split_metrics
    from medlearn.tasks.qsar.task import TASK, assemble_model, member_data

    out = Path(request.run_dir)
    if (out / "comparison.json").exists() and not request.force:
        raise RunExistsError(out, "a finished comparison is already here", "pass --force to overwrite it")
    overrides = parse_overrides(list(request.overrides or []), request.plan_file)
    if request.seed is not None:
        overrides.setdefault("train.seed", request.seed)
    seed = overrides.get("train.seed", 0)
    data = TASK.load_data(request.data, request.options)
    splits = TASK.split(data, request, seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    base = TASK.make_plan(data, splits, request).apply_overrides(overrides)
    models = models or default_models(base.data.task_type)
    plans = {name: base.apply_overrides({"network.name": name}) for name in models}  # every name checked first
    warning = data.invalid_warning()
    if warning:
        echo(f"warning: {warning}")
    if (out / MODELS_DIR).exists():
        shutil.rmtree(out / MODELS_DIR)  # members of an earlier comparison must not be reused
    out.mkdir(parents=True, exist_ok=True)
    configure_cpu_threads()
    kinds = sorted({s["kind"] for plan in plans.values() for s in TASK.member_specs(plan)})
    payload = member_data(base, data, splits, kinds)
    task_type, targets = base.data.task_type, list(base.data.targets)
    rows = []
    for name, plan in plans.items():
        seed_everything(plan.train.seed)
        wall, cpu = time.time(), _cpu_seconds()
        run = RunDirectory(out / MODELS_DIR / name)
        run.logs_dir.mkdir(parents=True, exist_ok=True)
        members, _ = train_members(TASK, plan, payload, run, False, request.progress, echo)
        model = assemble_model(plan, payload, members)
        pred = model.predict_values(data.table.smiles)
        row: dict[str, Any] = {"model": name, "kept": "+".join(m.kind for m in model.members_),
                               "cpu_s": round(_cpu_seconds() - cpu, 1), "wall_s": round(time.time() - wall, 1)}
        for part in ("val", "test"):
            rows_mask = splits.mask(part)
            if rows_mask.any():
                metrics = split_metrics(task_type, data.y[rows_mask], pred[rows_mask], targets,
                                        request.n_boot if part == "test" else 0, plan.train.seed)
                for key in KEYS[task_type]:
                    row[f"{part}_{key}"] = metrics[key]["value"]
                if part == "test":
                    row[f"test_{headline_metric(task_type)}_ci95"] = metrics[headline_metric(task_type)]["ci95"]
        rows.append(row)
        echo(f"  {name}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in row.items() if k != "model" and not k.endswith("_ci95")))
    _write(out, base, rows, Path(request.data).name, task_type)
    return rows


def _write(out: Path, plan: Any, rows: list[dict[str, Any]], data_name: str, task_type: str) -> None:
    from matplotlib.figure import Figure

    from medlearn.evaluation.report import Report
    from medlearn.io import write_bytes, write_json, write_text
    from medlearn.tasks.qsar.evaluate import headline_metric

    write_json(out / "comparison.json", {"plan": plan.to_dict(), "rows": rows})
    keys = [k for k in rows[0] if not k.endswith("_ci95")]
    md = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(f"{r.get(k):.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys)
           + " |" for r in rows]
    write_text(out / "comparison.md", "\n".join(md) + "\n")
    metric = f"test_{headline_metric(task_type)}"
    fig = Figure(figsize=(max(5, len(rows) * 0.8), 4))
    ax = fig.subplots()
    values = [r.get(metric) if r.get(metric) is not None else np.nan for r in rows]
    ax.bar([r["model"] for r in rows], values)
    errors = [r.get(f"{metric}_ci95") for r in rows]
    if all(e is not None for e in errors):
        lo = [v - e[0] for v, e in zip(values, errors, strict=True)]
        hi = [e[1] - v for v, e in zip(values, errors, strict=True)]
        ax.errorbar([r["model"] for r in rows], values, yerr=[lo, hi], fmt="none", ecolor="black", capsize=3)
    ax.set_ylabel(metric)
    ax.set_title(f"{data_name}, split {plan.data.split}")
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes(out / "comparison.png", buffer.getvalue())
    report = Report(f"QSAR comparison: {data_name}", f"split {plan.data.split}, seed {plan.train.seed}")
    report.add_table(rows, caption="the same split and features for every model; val used only for early stopping "
                                   "and model choice; test CI: 95% bootstrap over molecules")
    report.add_figure(fig, "comparison", caption=f"{metric} (95% CI)")
    report.add_preformatted(plan.describe())
    report.write(out / "report.html")

