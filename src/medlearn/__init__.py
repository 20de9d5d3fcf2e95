"""medlearn: deep learning on medical images and molecules, CPU first.

``medlearn.load_run(run_dir)`` returns the fitted model of any finished run directory (a
:class:`~medlearn.tasks.base.TaskModel`); the API classes (``Classifier``, ``Segmenter``,
``QSARModel``, ``AffinityModel``, ``MoleculeGenerator``) are imported on first use.

Importing the package sets OpenMP to a passive wait policy (unless the user chose one) before torch
loads: with 2 threads and another busy process, spin-waiting collapses PyTorch throughput ~10x.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_API = {
    "Classifier": "medlearn.tasks.classify.model",
    "Segmenter": "medlearn.tasks.segment.model",
    "QSARModel": "medlearn.tasks.qsar.model",
    "AffinityModel": "medlearn.tasks.cpi.model",
    "MoleculeGenerator": "medlearn.tasks.generate.model",
    "Registrator": "medlearn.tasks.register.model",
}

__all__ = ["__version__", "load_run", *_API]


def load_run(run_dir: str | Path) -> Any:
    """The fitted model of the finished run in ``run_dir``, whatever its task.

    Raises :class:`medlearn.errors.InputError` (one line) for a folder that is not a finished run, or a
    model file of another format or a newer version.
    """
    from medlearn.engine.rundir import RunDirectory
    from medlearn.io.artifact import load_artifact
    from medlearn.tasks import TASKS, get_task

    run = RunDirectory(Path(run_dir)).require_finished()
    artifact = load_artifact(run.model_file)
    if artifact.task not in TASKS:
        from medlearn.errors import InputError

        raise InputError(run.model_file, f"is a model of task '{artifact.task}', which this medlearn does not know",
                         "upgrade medlearn")
    return get_task(artifact.task).model_class.load(run.path, artifact)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'medlearn' has no attribute {name!r}")
