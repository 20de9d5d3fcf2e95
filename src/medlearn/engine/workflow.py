"""The one training skeleton every task runs, and the one evaluation of a finished run.

:func:`train`: check the run folder's rules -> parse the overrides -> load and check the data -> split
(or the saved split on ``--resume``) -> plan (rules, overrides, ranges; or the saved plan) -> only then
create or empty the run folder -> save ``plan.json``, ``config.yaml``, ``versions.json``,
``splits.json`` -> print the plan and the expected time -> train the members
(:mod:`medlearn.engine.members`) -> assemble the model and save it -> evaluate (CIs) -> report ->
``metrics.json`` last. Nothing the user already has is touched before every input was checked.

:func:`evaluate_run`: a finished run on labelled data, written to ``RUN/evaluations/<name>/`` (never
the run's own files), saying how many items the model learnt from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlearn.engine.distributed import is_primary_process
from medlearn.engine.rundir import RunDirectory
from medlearn.engine.warnings_log import count_lines, warnings_to
from medlearn.errors import InputError
from medlearn.io import write_json

if TYPE_CHECKING:
    from medlearn.tasks.base import EvaluationRequest, Task, TaskModel, TrainRequest

Echo = Callable[..., None]


def _overrides(request: TrainRequest) -> dict[str, Any]:
    from medlearn.plan import parse_overrides

    if isinstance(request.overrides, dict):
        overrides = dict(request.overrides)
        if request.plan_file:
            overrides = {**parse_overrides(None, request.plan_file), **overrides}
    else:
        overrides = parse_overrides(list(request.overrides or []), request.plan_file)
    if request.seed is not None:
        overrides.setdefault("train.seed", request.seed)
    if request.devices:
        overrides["train.devices"] = request.devices
    return overrides


def train(task: Task, request: TrainRequest, echo: Echo = print) -> dict[str, Any]:
    """Run a whole training of ``task``; returns the metrics written to ``metrics.json`` ({} in a DDP worker)."""
    from medlearn.data.splits import Splits
    from medlearn.engine.members import train_members
    from medlearn.engine.seed import configure_cpu_threads, seed_everything

    run = RunDirectory(Path(request.run_dir))
    resuming = run.check_start(force=request.force, resume=request.resume)
    overrides = _overrides(request)
    request.plan_overrides = overrides
    data = task.load_data(request.data, request.options, overrides=overrides)
    ids = task.item_ids(data)
    if resuming:
        plan = task.plan_class.load(run.plan_file)
        if overrides:
            echo("note: --set/--plan are ignored on --resume (the run continues with its saved plan)")
        splits = Splits.load(run.splits_file, ids, task.split_unit)
    else:
        seed = overrides.get("train.seed", 0)
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0  # a bad one: the plan says so
        splits = task.split(data, request, seed)
        plan = task.make_plan(data, splits, request).apply_overrides(overrides)
        plan = task.finish_plan(plan, data, splits, overrides, echo)
    seed_everything(plan.train.seed)
    configure_cpu_threads()
    budget = None if resuming else time_plan(task, plan, data, splits, overrides, echo)
    if budget:
        plan = budget.pop("plan")
    run.prepare(force=request.force, resume=request.resume)
    if is_primary_process() and not resuming:
        plan.save(run.plan_file)
        run.write_config(request.config())
        run.write_versions(plan.train.seed)
        splits.save(run.splits_file)
    if is_primary_process():
        echo(f"Plan ({run.plan_file}):\n{plan.describe()}")
        if budget:
            echo(budget_line(budget, plan))
    log = run.warnings_log
    with warnings_to(log):
        payload = task.prepare(plan, data, splits, run, request, echo)
        members, training = train_members(task, plan, payload, run, resuming, request.progress, echo)
        if not is_primary_process():  # a DDP worker: the primary process assembles, evaluates and reports
            return {}
        if budget:
            training["planned"] = budget
        model = task.assemble(plan, payload, members, data, splits, run)
        model.run_dir_ = run.path
        model.save_run(run)
        metrics = task.evaluate(model, data, splits, request.n_boot)
        metrics = {"task": task.name, **metrics, "training": {**training, **metrics.get("training", {})}}
        task.report(run.report_file, model, data, splits, metrics, run,
                    f"medlearn {task.name}: {Path(request.data).name}")
    metrics = public(metrics)
    write_json(run.metrics_file, metrics)  # last: the run counts as finished from here
    if count_lines(log):
        echo(f"{count_lines(log)} library warning(s) in {log}")
    return metrics


def public(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` without the keys that start with ``_`` (arrays an evaluation hands to its report)."""
    return {k: v for k, v in metrics.items() if not str(k).startswith("_")}


def time_plan(task: Task, plan: Any, data: Any, splits: Any, overrides: dict[str, Any], echo: Echo
              ) -> dict[str, Any] | None:
    """Time a few steps of the plan here, let the task fit its plan to the budget, and summarise."""
    from medlearn.engine.budget import budget_summary, measure_step_seconds
    from medlearn.engine.parallel import member_layout

    timing = task.step_timing(plan, data, splits)
    if timing is None:
        return None
    layout = member_layout(len(task.member_specs(plan)), plan.train.devices)
    seconds = measure_step_seconds(timing.module, timing.batch, layout.threads) / max(timing.speedup, 1e-6)
    budget = plan.train.max_minutes
    if budget and timing.fixed_steps and layout.rounds * timing.steps_wanted * seconds / 60 > budget:
        plan = task.fit_budget(plan, timing, seconds, layout.workers, overrides, echo)
        timing = task.step_timing(plan, data, splits) or timing
        layout = member_layout(len(task.member_specs(plan)), plan.train.devices)
    summary = budget_summary(seconds, timing, layout.rounds, budget)
    if budget and summary.get("steps_in_budget", timing.steps_wanted) < 0.8 * timing.steps_wanted:
        echo(f"warning: this machine gives ~{summary['steps_in_budget']} steps per member in the {budget:g}-min "
             f"budget ({seconds * 1000:.0f} ms per step), {summary['steps_in_budget'] / timing.steps_wanted:.0%} of "
             f"the ~{timing.steps_wanted} the defaults' evidence used: the model will be undertrained (raise "
             "train.max_minutes to close the gap)")
    elif budget and timing.fixed_steps and summary["expected_minutes"] > budget:
        echo(f"warning: expected ~{summary['expected_minutes']:.0f} min, over the {budget:g}-min budget: training "
             "stops at the budget, short of its planned steps")
    return {"plan": plan, **summary}


def budget_line(budget: dict[str, Any], plan: Any) -> str:
    """The line printed before training: the measured step time and the expected duration."""
    limit = plan.train.max_minutes
    text = (f"Training: ~{budget['expected_minutes']:.1f} min expected ({budget['seconds_per_step'] * 1000:.0f} ms "
            f"per step measured here, {budget['steps_wanted']} steps per member")
    return text + (f"; budget {limit:g} min, train.max_minutes)" if limit else ")")


def evaluate_run(model: TaskModel, request: EvaluationRequest, echo: Echo = print) -> dict[str, Any]:
    """Evaluate a loaded model on ``request.data``; writes ``RUN/evaluations/<name>/{metrics.json,report.html}``."""
    from medlearn.tasks import get_task
    from medlearn.tasks.base import safe_name

    task = get_task(model.task_name)
    if getattr(model, "run_dir_", None) is None:
        raise InputError("evaluate", "the model has no run directory", "load it with medlearn.load_run(RUN)")
    run = RunDirectory(model.run_dir_)
    out = run.evaluations_dir / safe_name(request.name)
    data = task.load_data(request.data, request.options, model=model)
    metrics = task.evaluate(model, data, None, request.n_boot)
    seen = task.seen_in_training(model, data)
    seen, total = seen if isinstance(seen, tuple) else (seen, len(task.item_ids(data)))
    metrics = {"task": task.name, "data": request.data, **metrics,
               "seen_in_training": {"items": int(seen), "of": int(total)}}
    if seen:
        echo(f"warning: {seen} of {total} items of {request.data} are ones the model learnt from (identical "
             "images / molecules): their metrics are optimistic, not an estimate on unseen data")
    task.report(out / "report.html", model, data, None, metrics, None,
                f"medlearn {task.name} evaluation: {Path(request.data).name}")
    metrics = public(metrics)
    write_json(out / "metrics.json", metrics)
    return metrics


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
