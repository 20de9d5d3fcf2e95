"""What every task's CLI shares: the console, JSON printing, and the ``train`` / ``predict`` /
``evaluate`` / ``plan-fields`` commands built around a task's own arguments.

A task's CLI file declares only its own arguments (chemprop v2's ``add_common_args`` idea)::

    @train_command(app, "qsar")
    def train(data: Path = typer.Argument(...), smiles: str = typer.Option(None, "--smiles")) -> TaskArgs:
        return data, {"smiles_column": smiles}

and gets the shared options on every ``train`` from :data:`TRAIN_OPTIONS` (``-o``, ``--set``, ``--plan``,
``--seed``, ``--devices``, ``--force``, ``--resume``, ``--quiet``, ``--bootstrap``); ``predict`` gets the
run directory and ``-o``; ``evaluate`` the run, the data, ``--name`` and ``--bootstrap``. Nothing happens
here that the Python API cannot do.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console(stderr=False, highlight=False, soft_wrap=True)

TaskArgs = tuple[Path, dict[str, Any]]


def print_json(obj: Any) -> None:
    from medlearn.io.atomic import _jsonable

    console.print_json(json.dumps(_jsonable(obj)))


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


#: The options every ``train`` command has (name, type, typer default).
TRAIN_OPTIONS: list[tuple[str, Any, Any]] = [
    ("out", Path | None, typer.Option(None, "-o", "--out", help="Run directory (default: runs/<task>-<data>).")),
    ("set_", list[str] | None, typer.Option(None, "--set", help="Plan override key=value, e.g. train.max_epochs=20 "
                                                                "(see `plan-fields`).")),
    ("plan_file", Path | None, typer.Option(None, "--plan", help="YAML file of plan overrides.")),
    ("seed", int | None, typer.Option(None, "--seed", help="Random seed (= --set train.seed=N).")),
    ("devices", int | None, typer.Option(None, "--devices", help="Number of devices (DDP when > 1).")),
    ("force", bool, typer.Option(False, "--force", help="Overwrite a finished run.")),
    ("resume", bool, typer.Option(False, "--resume", help="Continue an interrupted run.")),
    ("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bar.")),
    ("n_boot", int, typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CIs.")),
]


def _extend(fn: Callable[..., Any], before: list[tuple[str, Any, Any]], after: list[tuple[str, Any, Any]],
            body: Callable[..., Any]) -> Callable[..., Any]:
    """``body`` with ``fn``'s parameters between ``before`` and ``after`` (as Typer reads signatures)."""
    own = inspect.signature(fn).parameters.values()
    hints = typing.get_type_hints(fn)
    params = ([_param(n, t, d) for n, t, d in before]
              + [p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
                 for p in own]
              + [_param(n, t, d) for n, t, d in after])
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in params}
    body.__doc__ = fn.__doc__
    body.__name__ = fn.__name__
    return body


def _split(kwargs: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {n: kwargs.pop(n) for n in names}


def headline(task: str, metrics: dict[str, Any]) -> None:
    """Print the task's headline numbers, CIs included (a CI that could not be estimated says so)."""
    from medlearn.tasks import get_task

    shown = get_task(task).headline(metrics)
    if shown:
        print_json(shown)


def train_command(app: typer.Typer, task: str) -> Callable[[Callable[..., TaskArgs]], Callable[..., TaskArgs]]:
    """Register ``train``: the decorated function turns its own arguments into ``(data, options)``."""

    def decorate(fn: Callable[..., TaskArgs]) -> Callable[..., TaskArgs]:
        shared = [n for n, _, _ in TRAIN_OPTIONS]

        def command(**kwargs: Any) -> None:
            from medlearn.engine.workflow import train
            from medlearn.tasks import get_task
            from medlearn.tasks.base import TrainRequest, evaluation_name

            common = _split(kwargs, shared)
            data, options = fn(**kwargs)
            out = common["out"] or Path("runs") / f"{task}-{evaluation_name(data)}"
            request = TrainRequest(task, str(data), str(out), list(common["set_"] or []),
                                   str(common["plan_file"]) if common["plan_file"] else None, common["seed"],
                                   common["devices"], common["force"], common["resume"], not common["quiet"],
                                   common["n_boot"], options)
            metrics = train(get_task(task), request, echo=console.print)
            if not metrics:  # a DDP worker process: the primary one reports
                return
            headline(task, metrics)
            console.print(f"run directory: {out}  (report: {Path(out) / 'report.html'})")

        app.command("train")(_extend(fn, [], TRAIN_OPTIONS, command))
        return fn

    return decorate


def load_task_model(task: str, run: Path) -> Any:
    """The fitted model of the ``task`` run in ``run`` (one line if it is another task's run)."""
    from medlearn.tasks import model_class

    return model_class(task).load(run)


def predict_command(app: typer.Typer, task: str, name: str = "predict",
                    out_help: str = "Output file or folder.") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``predict``: the decorated function gets the loaded ``model`` and ``out`` first, then its
    own arguments, and returns the files it wrote."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        run_arg = ("run", Path, typer.Argument(..., help=f"A finished `medlearn {task} train` run directory."))
        out_opt = ("out", Path, typer.Option(..., "-o", "--out", help=out_help))
        own = [p for p in inspect.signature(fn).parameters if p not in ("model", "out")]

        def command(**kwargs: Any) -> None:
            model = load_task_model(task, kwargs.pop("run"))
            out = kwargs.pop("out")
            written = fn(model=model, out=out, **{k: kwargs[k] for k in own})
            if written is not None:
                console.print(f"wrote {len(written)} file(s): {', '.join(str(w) for w in written[:5])}"
                              + (" ..." if len(written) > 5 else ""))

        wrapped = _extend(_without(fn, ("model", "out")), [run_arg], [out_opt], command)
        app.command(name)(wrapped)
        return fn

    return decorate


def _without(fn: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """A stand-in of ``fn`` whose signature lacks ``names`` (for :func:`_extend`)."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)

    def stub() -> None:  # never called: only its signature is read
        raise NotImplementedError

    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
              if p.name not in names]
    stub.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    stub.__annotations__ = {p.name: p.annotation for p in params}
    stub.__doc__ = fn.__doc__
    stub.__name__ = fn.__name__
    return stub


def evaluate_command(app: typer.Typer, task: str, data_help: str = "Labelled data in a layout `train` reads."
                     ) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Any]]:
    """Register ``evaluate RUN DATA``: the decorated function turns its own options into reading options.

    Results go to ``RUN/evaluations/<name>/`` (``--name``, default: the data's name), never to the run's
    own files.
    """

    def decorate(fn: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
        before = [("run", Path, typer.Argument(..., help=f"A finished `medlearn {task} train` run directory.")),
                  ("data", Path, typer.Argument(..., help=data_help))]
        name_help = "Evaluation name: results go to RUN/evaluations/NAME/ (default: the data's name)."
        after = [("name", str | None, typer.Option(None, "--name", help=name_help)),
                 ("n_boot", int, typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CIs."))]

        def command(**kwargs: Any) -> None:
            from medlearn.tasks.base import evaluation_name

            run, data = kwargs.pop("run"), kwargs.pop("data")
            name, n_boot = kwargs.pop("name"), kwargs.pop("n_boot")
            model = load_task_model(task, run)
            options = fn(**kwargs)
            name = name or evaluation_name(data)
            metrics = model.evaluate(data, name=name, n_boot=n_boot, **options)
            headline(task, metrics)
            out = Path(run) / "evaluations" / name
            console.print(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")

        app.command("evaluate")(_extend(fn, before, after, command))
        return fn

    return decorate


def plan_fields_command(app: typer.Typer, task: str) -> None:
    """Register ``plan-fields``: every plan field with its type, default, range and meaning."""

    @app.command("plan-fields")
    def plan_fields() -> None:
        """List the plan fields `--set` can change, with their meaning and allowed range."""
        from medlearn.tasks import get_task

        for row in get_task(task).plan_class.field_table():
            limits = f" ({row['range']})" if row["range"] else ""
            meaning = f"  -- {row['help']}" if row["help"] else ""
            console.print(f"{row['field']}: {row['type']} = {row['default']}{limits}{meaning}", markup=False)
