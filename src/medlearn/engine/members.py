"""Ensemble members: trained side by side with one time-budget rule, checkpointed, reused on resume.

A task trains one member in its ``fit_member(job)`` and returns a :class:`MemberOutput` (weights and/or
scikit-learn estimators, plus a summary). The engine decides everything around it, the same for every task:

* where it trains: :func:`~medlearn.engine.parallel.member_layout` runs members side by side, one
  process per core group on CPU (one after another on a GPU or with DDP);
* how long: a member that shares a worker with others gets ``train.max_minutes / rounds``, so the
  whole ensemble stays within the plan's budget;
* what survives an interruption: each finished member is saved atomically as
  ``checkpoints/<tag>/member.pt`` (the model artefact format, loaded ``weights_only``) and reused on
  ``--resume``; an unfinished one continues from its ``last.ckpt``;
* how a stop looks: Ctrl-C (Lightning's interrupted state or its ``sys.exit``) becomes
  ``KeyboardInterrupt``, so nothing interrupted ever looks finished.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlearn.engine.rundir import RunDirectory

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from medlearn.io.artifact import Artifact
    from medlearn.plan import Plan


@dataclass
class MemberOutput:
    """What one trained member leaves: network weights (state dicts), estimators, and a summary
    (epochs, steps, best epoch, validation score ...; plain data)."""

    tensors: dict[str, Any] = field(default_factory=dict)
    estimators: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainedMember:
    """A finished member: its index, spec and ``member.pt`` (read with :meth:`load`)."""

    index: int
    tag: str
    spec: dict[str, Any]
    file: str
    summary: dict[str, Any]

    def load(self) -> Artifact:
        from medlearn.io.artifact import load_artifact

        return load_artifact(self.file, kind="member")


@dataclass
class MemberJob:
    """Everything one member's training needs; picklable (it travels to a worker process)."""

    task: str
    run: Path
    plan: Plan
    index: int
    count: int
    spec: dict[str, Any]
    payload: Any
    resuming: bool
    progress: bool
    cores: int = 1

    @property
    def tag(self) -> str:
        return RunDirectory.member_tag(self.index, self.count)

    @property
    def seed(self) -> int:
        return int(self.spec.get("seed", self.plan.train.seed + self.index))

    @property
    def has_checkpoint(self) -> bool:
        """An interrupted attempt left ``last.ckpt`` here, which :meth:`fit` continues from on resume."""
        return self.resuming and (self.directory / "last.ckpt").exists()

    @property
    def directory(self) -> Path:
        """``checkpoints/<tag>/``: this member's checkpoints."""
        return RunDirectory(self.run).member_file(self.tag).parent

    def trainer(self, monitor: str, mode: str = "max", patience: int | None = None,
                max_epochs: int | None = None, callbacks: Sequence[Any] = (), **kwargs: Any) -> pl.Trainer:
        """The engine's Lightning ``Trainer`` for this member (its checkpoint and log folders, the plan's
        devices, precision, budget and epochs unless given)."""
        from medlearn.engine.trainer import build_trainer

        t = self.plan.train
        # train.precision=bf16: Lightning's bf16 autocast, unless the task handles precision itself (passes its own)
        kwargs.setdefault("precision", "bf16-mixed" if getattr(t, "precision", "fp32") == "bf16" else None)
        return build_trainer(RunDirectory(self.run), max_epochs=max_epochs or t.max_epochs, monitor=monitor, mode=mode,
                             patience=patience, devices=t.devices, max_time_minutes=t.max_minutes,
                             enable_progress_bar=self.progress, extra_callbacks=list(callbacks),
                             checkpoint_dir=self.directory, log_version=self.tag, **kwargs)

    def fit(self, trainer: pl.Trainer, module: pl.LightningModule, train_loader: Any, val_loader: Any = None
            ) -> pl.Trainer:
        """``trainer.fit``, continuing from this member's ``last.ckpt`` on resume (loaded ``weights_only``);
        an interruption raises ``KeyboardInterrupt``."""
        import pickle

        from medlearn.errors import InputError

        last = self.directory / "last.ckpt"
        ckpt = str(last) if self.resuming and last.exists() else None
        try:
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt, weights_only=True)
        except SystemExit as exc:  # Lightning ends a Ctrl-C with sys.exit(1) after its clean-up
            raise KeyboardInterrupt from exc
        except pickle.UnpicklingError as exc:  # a checkpoint holding code: refused, nothing in it was run
            raise InputError(last, f"refused: the checkpoint holds objects that are not plain data "
                             f"({str(exc).splitlines()[0][:100]}); nothing in it was run",
                             "delete it to retrain this member from the start") from exc
        if trainer.interrupted:
            raise KeyboardInterrupt
        return trainer

    def best_state(self, trainer: pl.Trainer) -> dict[str, Any] | None:
        """The LightningModule state dict of the best checkpoint (``weights_only``), or None."""
        import torch

        from medlearn.engine.trainer import best_checkpoint

        best = best_checkpoint(trainer)
        if not best:
            return None
        return torch.load(best, map_location="cpu", weights_only=True)["state_dict"]


def train_members(task: Any, plan: Plan, payload: Any, run: RunDirectory, resuming: bool, progress: bool,
                  echo: Callable[[str], None]) -> tuple[list[TrainedMember], dict[str, Any]]:
    """Train (or reuse) every member of ``task.member_specs(plan)``; returns them and a training summary."""
    from medlearn.engine.parallel import member_layout, run_parallel

    specs = task.member_specs(plan)
    n = len(specs)
    layout = member_layout(n, plan.train.devices)
    if n > 1:
        echo(layout.describe())
    jobs = []
    for k, spec in enumerate(specs):
        member_plan = dataclasses.replace(plan, train=dataclasses.replace(plan.train, seed=int(
            spec.get("seed", plan.train.seed + k))))
        if plan.train.max_minutes is not None:
            member_plan.train.max_minutes = plan.train.max_minutes / layout.rounds
        job = MemberJob(task.name, run.path, member_plan, k, n, spec, payload, resuming,
                        progress and (layout.workers == 1 or k == 0), layout.threads)
        jobs.append({"job": job})
    started = time.perf_counter()
    members = run_parallel(run_member, jobs, layout)
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {"seconds": round(seconds, 1), "members": n, "members_side_by_side": layout.workers,
                               "per_member": [m.summary for m in members]}
    return members, summary


def run_member(job: MemberJob) -> TrainedMember:
    """Train one member unless its ``member.pt`` exists (then reuse it); save it atomically."""
    from medlearn.engine.seed import seed_everything
    from medlearn.io.artifact import Artifact, load_artifact, save_artifact
    from medlearn.tasks import get_task

    done = RunDirectory(job.run).member_file(job.tag)
    if done.exists():
        summary = load_artifact(done, kind="member").extras.get("summary", {})
        return TrainedMember(job.index, job.tag, job.spec, str(done), summary)
    from medlearn.engine.warnings_log import warnings_to

    seed_everything(job.seed)
    task = get_task(job.task)
    started = time.perf_counter()
    with warnings_to(RunDirectory(job.run).warnings_log):  # also in worker processes
        output = task.fit_member(job)
    summary = {"seed": job.seed, **job.spec, **output.summary,
               "seconds": round(output.summary.get("seconds", time.perf_counter() - started), 1)}
    from medlearn.engine.distributed import is_primary_process

    if is_primary_process():
        save_artifact(done, Artifact(job.task, job.plan.to_dict(), output.tensors, {"summary": summary},
                                     output.estimators, kind="member"))
    return TrainedMember(job.index, job.tag, job.spec, str(done), summary)
