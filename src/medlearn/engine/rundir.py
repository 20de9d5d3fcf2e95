"""The run directory contract shared by every task.

A run folder holds ``plan.json``, ``config.yaml``, ``model.pt``, ``metrics.json``, ``report.html``,
``logs/``, ``versions.json`` (and ``splits.json``, ``checkpoints/``, ``evaluations/<name>/``). A run
counts as *finished* once ``metrics.json`` exists: it is written last, atomically, so an interrupted
run never looks finished. A finished run is never overwritten without ``force``; an unfinished one is
only reused with ``resume`` (or ``force``). :meth:`RunDirectory.check_start` applies these rules
without touching anything, so a training validates its whole input first and only then calls
:meth:`RunDirectory.prepare`, which empties (``force``) or creates the folder.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from medlearn.engine.distributed import is_primary_process
from medlearn.errors import InputError, RunExistsError
from medlearn.io import write_json, write_text

_TRACKED_PACKAGES = ("medlearn", "torch", "monai", "lightning", "numpy", "scikit-learn", "rdkit")


@dataclass
class RunDirectory:
    """A training run's folder. ``prepare`` creates it and enforces the overwrite/resume rules."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # -- well-known files -------------------------------------------------------------------
    @property
    def plan_file(self) -> Path:
        return self.path / "plan.json"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def model_file(self) -> Path:
        return self.path / "model.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def versions_file(self) -> Path:
        return self.path / "versions.json"

    @property
    def splits_file(self) -> Path:
        return self.path / "splits.json"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def cache_dir(self) -> Path:
        """``cache/``: preprocessed training data a resumed run reuses."""
        return self.path / "cache"

    @property
    def onnx_file(self) -> Path:
        """``model.onnx``: a companion of ``model.pt`` for fast CPU inference (tasks that export one)."""
        return self.path / "model.onnx"

    @property
    def warnings_log(self) -> Path:
        """``logs/warnings.log``: library warnings of the training (kept off the terminal)."""
        return self.logs_dir / "warnings.log"

    @property
    def evaluations_dir(self) -> Path:
        """``evaluations/``: each ``evaluate`` writes ``evaluations/<name>/``, never the run's own files."""
        return self.path / "evaluations"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints_dir / "last.ckpt"

    def member_file(self, tag: str) -> Path:
        """A trained ensemble member's weights, ``checkpoints/<tag>/member.pt`` (``tag`` from
        :meth:`member_tag`; "" for a single model). Written atomically once the member is finished, so
        its presence means "do not train this member again" on ``--resume``."""
        return self.checkpoints_dir / tag / "member.pt"

    # -- state ------------------------------------------------------------------------------
    def is_finished(self) -> bool:
        return self.metrics_file.exists()

    @staticmethod
    def member_tag(k: int, n_members: int) -> str:
        """Sub-folder name of ensemble member ``k`` under ``checkpoints/`` and ``logs/``; "" for a
        single model, which keeps the plain layout."""
        return f"member{k}" if n_members > 1 else ""

    def has_last_checkpoint(self) -> bool:
        """True when a ``last.ckpt`` (of the run, or of an ensemble member) is there to resume from."""
        return self.checkpoints_dir.is_dir() and any(self.checkpoints_dir.rglob("last.ckpt"))

    def check_start(self, *, force: bool = False, resume: bool = False) -> bool:
        """The overwrite/resume rules of :meth:`prepare`, without touching anything.

        Returns True when an interrupted run is here to resume. Raises RunExistsError for a finished run
        without ``force``, or an unfinished one without ``resume``/``force``; InputError for ``resume``
        where nothing was started.
        """
        if not is_primary_process():
            return resume and self.has_last_checkpoint()
        if self.path.exists() and not self.path.is_dir():
            raise InputError(self.path, "is a file, not a run directory", "choose another -o")
        if self.path.is_dir() and any(self.path.iterdir()):
            if force:
                return False
            if self.is_finished():
                raise RunExistsError(self.path, "a finished run is already here",
                                     "pass --force to overwrite it or choose another -o")
            if resume:
                return self.plan_file.exists()
            raise RunExistsError(self.path, "an unfinished run is here",
                                 "pass --resume to continue it or --force to start over")
        if resume:
            raise InputError(self.path, "no run to resume here", "drop --resume to start a new run")
        return False

    def prepare(self, *, force: bool = False, resume: bool = False) -> bool:
        """Create the folder (emptied first with ``force``). Returns True when an interrupted run should be
        resumed. Raises as :meth:`check_start`.

        A DDP worker process (see :mod:`medlearn.engine.distributed`) finds the folder its primary
        process already prepared and only reports whether that one resumes.
        """
        resuming = self.check_start(force=force, resume=resume)
        if not is_primary_process():
            return resuming
        if force and self.path.is_dir():
            shutil.rmtree(self.path)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return resuming

    def require_finished(self) -> RunDirectory:
        """For predict/evaluate/explain/export/serve: the folder must hold a finished run."""
        if not self.path.is_dir():
            raise InputError(self.path, "run directory not found", "train first or check the path")
        if not self.model_file.exists():
            raise InputError(self.path, "no model.pt in this run directory",
                             "the run did not finish; continue it with --resume")
        if not self.metrics_file.exists():
            raise InputError(self.path, "the run did not finish (no metrics.json)",
                             "continue it with `train ... --resume`")
        return self

    # -- writers ----------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        write_text(self.config_file, yaml.safe_dump(_plain(config), sort_keys=False))

    def write_versions(self, seed: int | None) -> None:
        versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
        for name in _TRACKED_PACKAGES:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        versions["seed"] = seed
        versions["git_commit"] = _git_commit()
        write_json(self.versions_file, versions)

    def read_metrics(self) -> dict[str, Any]:
        if not self.metrics_file.exists():
            raise InputError(self.path, "no metrics.json in this run directory", "the run did not finish")
        return json.loads(self.metrics_file.read_text())


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
