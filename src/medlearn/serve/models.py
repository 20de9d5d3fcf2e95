"""The served models: one per run directory, named after its folder (made unique), each with its lock.

``serve_predict`` of one model object is not assumed to be re-entrant (networks in eval mode with
hooks, e.g. Grad-CAM's): requests to the same model take turns (:attr:`ServedModel.lock`); requests
to different models run side by side. Everything else a request touches is its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlearn.tasks.base import TaskModel, safe_name


@dataclass
class ServedModel:
    """A loaded model under its URL name."""

    name: str
    model: TaskModel
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def input_kind(self) -> str:
        return str(getattr(self.model, "input_kind", "image"))

    @property
    def servable(self) -> bool:
        """False while the task keeps the base class's ``serve_predict`` (it cannot be served yet)."""
        return type(self.model).serve_predict is not TaskModel.serve_predict

    def info(self) -> dict[str, Any]:
        """``GET /models`` entry: name, task, inputs, labels, whether it serves, and the plan summary
        (the rest of ``describe()``)."""
        described = dict(self.model.describe())
        task = described.pop("task", getattr(self.model, "task_name", "?"))
        inputs = described.pop("inputs", self.input_kind)
        labels = described.pop("labels", None)
        return {"name": self.name, "task": task, "inputs": inputs, "labels": labels, "servable": self.servable,
                "summary": described}


def unique_names(runs: Sequence[Path]) -> list[str]:
    """URL-safe names from the run folders' names; repeats get ``-2``, ``-3`` ..."""
    names: list[str] = []
    for run in runs:
        base = safe_name(Path(run).resolve().name or "model")
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def load_models(runs: Sequence[str | Path]) -> dict[str, ServedModel]:
    """Every run loaded with :func:`medlearn.load_run` (InputError for a folder that is not a finished run)."""
    import medlearn

    paths = [Path(r) for r in runs]
    return {name: ServedModel(name, medlearn.load_run(path)) for name, path in zip(unique_names(paths), paths,
                                                                                  strict=True)}
