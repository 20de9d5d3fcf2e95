"""The task contract: what every ``medlearn/tasks/<name>/`` package provides (see :mod:`medlearn.tasks`).

Two classes per task:

* a :class:`Task` (registered under its CLI name): the training hooks the engine's one skeleton
  (:func:`medlearn.engine.workflow.train`) calls in order — ``load_data`` -> ``split`` ->
  ``make_plan`` -> ``prepare`` -> ``fit_member`` (per ensemble member, possibly in worker processes) ->
  ``assemble`` -> ``evaluate`` -> ``report``;
* a :class:`TaskModel`: the scikit-learn-style API class (``__init__`` stores parameters, ``fit``
  trains a run, ``load(run_dir)`` restores one, ``predict*``, ``evaluate``), saved and loaded as the
  one model artefact (:mod:`medlearn.io.artifact`), with the hooks predict / export / serve use.

A task imports no other task, builds no ``Trainer`` (the engine's :class:`~medlearn.engine.members.MemberJob`
does), writes no split code (:mod:`medlearn.data.splits`) and no run-directory file names of its own
(:class:`~medlearn.engine.rundir.RunDirectory`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from medlearn.errors import InputError

if TYPE_CHECKING:
    from medlearn.data.splits import Splits
    from medlearn.engine.budget import StepTiming
    from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
    from medlearn.engine.rundir import RunDirectory
    from medlearn.io.artifact import Artifact
    from medlearn.plan import Plan

Echo = Callable[[str], None]


@dataclass
class TrainRequest:
    """What the user asked for (saved as ``config.yaml``): the shared options of every ``train`` and,
    in ``options``, the task's own (label columns, SMILES column, ...)."""

    task: str
    data: str
    run_dir: str
    overrides: list[str] | dict[str, Any] = field(default_factory=list)
    plan_file: str | None = None
    seed: int | None = None
    devices: int | None = None
    force: bool = False
    resume: bool = False
    progress: bool = True
    n_boot: int = 1000
    options: dict[str, Any] = field(default_factory=dict)
    #: the parsed ``--set`` / ``--plan`` overrides (dotted keys), filled by the engine before ``split``
    plan_overrides: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None else value

    def override(self, key: str, default: Any = None) -> Any:
        """A plan field the user set (e.g. ``data.val_fraction`` for the split), else ``default``."""
        return self.plan_overrides.get(key, default)

    def config(self) -> dict[str, Any]:
        return {"task": self.task, "data": self.data, "overrides": self.overrides, "plan_file": self.plan_file,
                "seed": self.seed, "devices": self.devices, "n_boot": self.n_boot,
                **{k: v for k, v in self.options.items()}}


@dataclass
class EvaluationRequest:
    """``evaluate RUN DATA``: the labelled data and the task's reading options."""

    data: str
    name: str
    n_boot: int = 1000
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None else value


class Task(ABC):
    """Training hooks of one task; the engine's skeleton calls them in the order of the module docstring."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    model_class: ClassVar[type[TaskModel]]
    plan_class: ClassVar[type[Plan]]
    #: what one entry of ``splits.json`` is: "image", "case", "molecule", "pair" ...
    split_unit: ClassVar[str] = "item"

    # -- data ------------------------------------------------------------------------------------
    @abstractmethod
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: TaskModel | None = None) -> Any:
        """Read and check a dataset; bad or degenerate data raise :class:`InputError` (one line).

        For training ``overrides`` holds the parsed ``--set`` items (some change how data are read, e.g. a
        resize); for evaluation ``model`` is the trained model the data must fit.
        """

    @abstractmethod
    def item_ids(self, data: Any) -> list[Any]:
        """One id per item the split assigns (the entries of ``splits.json``)."""

    @abstractmethod
    def split(self, data: Any, request: TrainRequest, seed: int) -> Splits:
        """The train/val/test split (through :mod:`medlearn.data.splits`)."""

    # -- plan ------------------------------------------------------------------------------------
    @abstractmethod
    def make_plan(self, data: Any, splits: Splits, request: TrainRequest) -> Plan:
        """The rules from the training data's fingerprint (and this machine) to a plan; each rule's
        comment gives its evidence. Overrides are applied by the engine afterwards."""

    def finish_plan(self, plan: Plan, data: Any, splits: Splits, overrides: dict[str, Any], echo: Echo) -> Plan:
        """Fill what the plan learns from the training split (e.g. intensity statistics) and fit it to
        this machine's time budget, after the overrides (``overrides`` says which fields the user set);
        called once for a new run (a resumed run keeps its saved plan)."""
        return plan

    def step_timing(self, plan: Plan, data: Any, splits: Splits) -> StepTiming | None:
        """What the engine times before a new run (:mod:`medlearn.engine.budget`); None: nothing to time."""
        return None

    def fit_budget(self, plan: Plan, timing: StepTiming, seconds_per_step: float, workers: int,
                   overrides: dict[str, Any], echo: Echo) -> Plan:
        """Adapt a plan whose expected time exceeds ``train.max_minutes`` (leaving fields the user set);
        by default the plan is kept and the engine says how far short of its evidence it will be."""
        return plan

    # -- training ----------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, plan: Plan, data: Any, splits: Splits, run: RunDirectory, request: TrainRequest,
                echo: Echo) -> Any:
        """The picklable payload every member trains from (arrays, cache paths)."""

    def member_specs(self, plan: Plan) -> list[dict[str, Any]]:
        """One dict per member to train; by default ``train.ensemble`` members seeded ``seed + k``."""
        return [{"seed": plan.train.seed + k} for k in range(plan.train.ensemble)]

    @staticmethod
    @abstractmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        """Train one member (in this process or a worker); use ``job.trainer`` / ``job.fit``."""

    @abstractmethod
    def assemble(self, plan: Plan, payload: Any, members: list[TrainedMember], data: Any, splits: Splits,
                 run: RunDirectory) -> TaskModel:
        """The fitted model from the trained members (ensemble, selection, post-processing)."""

    # -- evaluation ----------------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, model: TaskModel, data: Any, splits: Splits | None, n_boot: int) -> dict[str, Any]:
        """Metrics with CIs (``{"value", "ci95"}``) per split present (``splits`` None: all items)."""

    @abstractmethod
    def report(self, path: Path, model: TaskModel, data: Any, splits: Splits | None, metrics: dict[str, Any],
               run: RunDirectory | None, title: str) -> None:
        """The task's report sections, written to ``path``."""

    def seen_in_training(self, model: TaskModel, data: Any) -> int | tuple[int, int]:
        """How many items of ``data`` the model learnt from (same image / molecule), for ``evaluate``; or
        ``(seen, scored)`` when only part of ``data`` is scored (e.g. a dataset's test fold)."""
        return 0

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The few numbers printed after training or evaluation."""
        return {k: v for k, v in metrics.items() if k in ("val", "test", "all")}


@dataclass
class ServiceInput:
    """One service request's inputs: uploaded files (saved, DICOM de-identified, in a private temporary
    folder with names the service chose) or JSON records (molecules, pairs), and options."""

    files: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServiceOutput:
    """What the service returns: one JSON result per input item, files to download (written under the
    request's working folder), and for images what the web viewer draws (see :func:`viewer_volume`)."""

    results: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)
    viewer: list[dict[str, Any]] = field(default_factory=list)


class TaskModel:
    """A task's model and its scikit-learn-style API.

    ``__init__`` stores parameters; :meth:`fit` trains a run directory through the engine and sets the
    fitted attributes (ending in ``_``); :meth:`load` restores a finished run. Subclasses implement
    :meth:`to_artifact` / :meth:`restore`, their ``predict*`` methods and :meth:`predict_files`.
    """

    task_name: ClassVar[str]
    artifact_version: ClassVar[int] = 1
    #: what ``predict`` and the service take: "image", "smiles", "pairs" or "count" (generators)
    input_kind: ClassVar[str] = "image"

    def __init__(self, overrides: Sequence[str] | dict[str, Any] | None = None, seed: int = 0,
                 progress: bool = False, n_boot: int = 1000, **options: Any) -> None:
        self.overrides = overrides
        self.seed = seed
        self.progress = progress
        self.n_boot = n_boot
        self.options = options

    # -- training ----------------------------------------------------------------------------------
    def fit(self, data: str | Path, run_dir: str | Path, force: bool = False, resume: bool = False) -> TaskModel:
        """Train on ``data`` into the run directory ``run_dir`` (plan, members, report, metrics)."""
        from medlearn.engine.workflow import train
        from medlearn.tasks import get_task

        overrides = self.overrides if isinstance(self.overrides, dict) else list(self.overrides or [])
        request = TrainRequest(self.task_name, str(data), str(run_dir), overrides, None, self.seed, None, force,
                               resume, self.progress, self.n_boot, dict(self.options))
        echo = print if self.progress else _warnings_only  # progress=True: every line the CLI prints
        self.metrics_ = train(get_task(self.task_name), request, echo=echo)
        fitted = type(self).load(run_dir)
        self.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
        return self

    @classmethod
    def load(cls, run_dir: str | Path, artifact: Artifact | None = None) -> TaskModel:
        """The fitted model of a finished run directory (``artifact``: its ``model.pt``, if already read)."""
        import json

        from medlearn.engine.rundir import RunDirectory
        from medlearn.io.artifact import load_artifact

        run = RunDirectory(Path(run_dir)).require_finished()
        if artifact is None or artifact.task != cls.task_name:
            artifact = load_artifact(run.model_file, task=cls.task_name, task_version=cls.artifact_version)
        model = cls()
        model.run_dir_ = run.path
        model.metrics_ = json.loads(run.metrics_file.read_text())
        model.restore(artifact, run.path)
        return model

    @classmethod
    def from_artifact(cls, artifact: Artifact, run_dir: Path | None = None) -> TaskModel:
        model = cls()
        model.run_dir_ = run_dir
        model.restore(artifact, run_dir)
        return model

    def save(self, path: str | Path) -> Path:
        """Write the model artefact (``model.pt``); see :meth:`save_run` for the run's companion files."""
        from medlearn.io.artifact import save_artifact

        return save_artifact(path, self.to_artifact())

    def save_run(self, run: RunDirectory) -> None:
        """Everything the run directory keeps of the model: ``model.pt`` (and task companions, e.g. ONNX)."""
        self.save(run.model_file)

    # -- contract for subclasses ---------------------------------------------------------------------
    def to_artifact(self) -> Artifact:
        raise NotImplementedError

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        raise NotImplementedError

    def predict_files(self, inputs: Sequence[str | Path], out: str | Path, **options: Any) -> list[Path]:
        """Predict inputs given as files (the CLI's ``predict``); returns the files written."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the service's ``GET /models`` shows: task, expected inputs, labels, plan summary."""
        return {"task": self.task_name, "inputs": self.input_kind}

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """Predict one service request (the web service's ``POST /models/{name}/predict``)."""
        raise InputError(self.task_name, "this model cannot be served yet")

    def export_onnx(self, path: Path) -> dict[str, Any]:
        """Write the whole pipeline that ONNX can express as one graph at ``path``; returns its metadata."""
        raise InputError(self.task_name, "this model has no ONNX export", "predict with `medlearn predict`")

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate(self, data: str | Path, name: str | None = None, n_boot: int | None = None,
                 **options: Any) -> dict[str, Any]:
        """Metrics (95% CIs) and a report on labelled ``data``, written to ``RUN/evaluations/<name>/``."""
        from medlearn.engine.workflow import evaluate_run

        return evaluate_run(self, EvaluationRequest(str(data), name or evaluation_name(data),
                                                    self.n_boot if n_boot is None else n_boot, options))

    @property
    def plan(self) -> Plan:
        return self.plan_


def _warnings_only(text: str = "", *_a: Any, **_k: Any) -> None:
    """The engine's lines a quiet API call still prints: warnings and notes (undertrained, empty masks ...)."""
    if str(text).startswith(("warning", "note")):
        print(text, flush=True)


def evaluation_name(data: str | Path) -> str:
    """A folder name for ``evaluations/`` from a dataset path (its stem, made safe)."""
    path = Path(str(data).rstrip("/"))
    stem = path.name[:-len("".join(path.suffixes))] if path.suffixes and path.is_file() else path.name
    return safe_name(stem or "data")


def safe_name(text: str) -> str:
    """``text`` usable as one folder name: letters, digits, ``-_.`` (nothing climbs out of a folder)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._")
    if not cleaned:
        raise InputError("--name", f"'{text}' is not usable as a folder name", "use letters, digits, - or _")
    return cleaned[:100]
