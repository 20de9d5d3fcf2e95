"""The one model artefact every task writes (``model.pt``, and each ensemble member's ``member.pt``).

A torch file holding only plain data, loaded with ``torch.load(weights_only=True)``, so a file a
user was handed can never run code when it is opened::

    {"format": "medlearn.artifact", "version": 1, "kind": "model" | "member",
     "task": "classify", "task_version": 1, "medlearn": "0.1.0",
     "plan": {...},                      # the plan as plain data
     "tensors": {"net": {name: Tensor}, ...},   # state dicts (or single tensors)
     "extras": {...},                    # JSON-like: label names, post-processing, training summary
     "estimators": {"rf": b"..."}}       # scikit-learn estimators in the skops format

scikit-learn estimators are stored with skops (never a bare pickle): on load every type the skops
payload names must be on :data:`TRUSTED_PREFIXES` (scikit-learn's and medlearn's own estimator
wrappers, beyond skops' default list of safe types), otherwise the file is refused before anything in it is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlearn.errors import InputError
from medlearn.io.atomic import atomic_path

FORMAT = "medlearn.artifact"
VERSION = 1
# modules whose types a skops payload may construct beyond skops' own safe list (everything else is
# refused): scikit-learn's internals (tree structures, calibrators, distance metrics) and medlearn's
# own estimator wrappers
TRUSTED_PREFIXES = ("sklearn.", "medlearn.tasks.qsar.")


@dataclass
class Artifact:
    """What a model (or a member) is made of; see the module docstring for the file layout."""

    task: str
    plan: dict[str, Any]
    tensors: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    estimators: dict[str, Any] = field(default_factory=dict)
    kind: str = "model"
    task_version: int = 1


def plain(value: Any) -> Any:
    """``value`` as data ``weights_only`` loading accepts: numpy scalars/arrays -> lists, paths -> str,
    non-finite floats kept (torch stores them), tuples -> lists."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return value
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a medlearn artefact (plain data only)")


def _tensors(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {str(k): _tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tensors(v) for v in value]
    raise TypeError(f"artefact tensors must be tensors or dicts/lists of them, got {type(value).__name__}")


def save_artifact(path: str | Path, artifact: Artifact) -> Path:
    """Write ``artifact`` atomically to ``path``."""
    import torch

    from medlearn import __version__

    payload = {"format": FORMAT, "version": VERSION, "kind": artifact.kind, "task": artifact.task,
               "task_version": artifact.task_version, "medlearn": __version__, "plan": plain(artifact.plan),
               "tensors": _tensors(artifact.tensors), "extras": plain(artifact.extras),
               "estimators": {name: dump_estimator(est) for name, est in artifact.estimators.items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_artifact(path: str | Path, task: str | None = None, kind: str = "model",
                  task_version: int | None = None) -> Artifact:
    """Read an artefact written by :func:`save_artifact`; refuse anything else in one line.

    ``task``: the task it must belong to (None: any). Estimators are rebuilt from skops (checked types).
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found", "train first, or point to a finished run directory")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(path, "refused: the file holds code or objects that are not plain data "
                         f"({str(exc).splitlines()[0][:120]}); nothing in it was run",
                         "use a model.pt written by medlearn") from exc
    except Exception as exc:  # zip/EOF/format errors: truncated or not a torch file
        raise InputError(path, f"cannot read the model file ({type(exc).__name__})",
                         "the file may be truncated; retrain or copy it again") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a medlearn model file", "use the model.pt of a medlearn run")
    if int(payload.get("version", 0)) > VERSION:
        raise InputError(path, f"written by a newer medlearn (artefact format v{payload['version']}; this "
                         f"medlearn reads v{VERSION})", "upgrade medlearn")
    if payload.get("kind") != kind:
        raise InputError(path, f"is a medlearn {payload.get('kind')} file, not a {kind} file")
    if task is not None and payload.get("task") != task:
        raise InputError(path, f"is a '{payload.get('task')}' model, not a '{task}' model",
                         f"use it with `medlearn {payload.get('task')}`")
    if task_version is not None and int(payload.get("task_version", 0)) > task_version:
        raise InputError(path, f"written by a newer medlearn ({payload.get('task')} model v"
                         f"{payload.get('task_version')}; this medlearn reads v{task_version})", "upgrade medlearn")
    estimators = {name: load_estimator(blob, path) for name, blob in payload.get("estimators", {}).items()}
    return Artifact(payload["task"], payload["plan"], payload.get("tensors", {}), payload.get("extras", {}),
                    estimators, payload["kind"], int(payload.get("task_version", 1)))


def dump_estimator(estimator: Any) -> bytes:
    """A scikit-learn estimator as skops bytes (no pickle)."""
    import skops.io as sio

    return sio.dumps(estimator)


def load_estimator(blob: bytes, source: str | Path) -> Any:
    """Rebuild an estimator from skops bytes, refusing types outside :data:`TRUSTED_PREFIXES`."""
    import skops.io as sio

    if not isinstance(blob, bytes):
        raise InputError(source, "an estimator entry is not skops data")
    try:
        untrusted = sio.get_untrusted_types(data=blob)
    except Exception as exc:
        raise InputError(source, f"cannot read a stored estimator ({type(exc).__name__})",
                         "the file may be truncated") from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise InputError(source, f"refused: a stored estimator needs types outside scikit-learn ({refused[0]}); "
                         "nothing in it was run")
    return sio.loads(blob, trusted=untrusted)
