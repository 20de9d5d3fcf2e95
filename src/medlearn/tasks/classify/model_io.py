"""``model.pt``: the trained network plus everything inference needs (plan with preprocessing,
label names, input size). Written atomically; loaded without the training code paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.io import atomic_path
from medlearn.tasks.classify.module import build_classifier_network
from medlearn.tasks.classify.plan import ClassificationPlan

FORMAT = "medlearn-classifier"


def save_classifier(path: str | Path, plan: ClassificationPlan, net: torch.nn.Module,
                    extra: dict[str, Any] | None = None) -> None:
    payload = {"format": FORMAT, "version": 1, "plan": plan.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "extra": extra or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_classifier(run: str | Path | RunDirectory) -> tuple[ClassificationPlan, torch.nn.Module, dict[str, Any]]:
    """(plan, network in eval mode, extra) from a finished run directory or a ``model.pt`` path."""
    path = Path(run.model_file if isinstance(run, RunDirectory) else run)
    if path.is_dir():
        path = RunDirectory(path).require_finished().model_file
    if not path.exists():
        raise InputError(path, "model file not found", "train a classifier first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(path, f"cannot read model ({type(exc).__name__})", "the file may be truncated") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a medlearn classifier model", "use the run directory of `medlearn classify train`")
    plan = ClassificationPlan.from_dict(payload["plan"], str(path))
    net = build_classifier_network(plan)
    net.load_state_dict(payload["state_dict"])
    net.eval()
    return plan, net, payload.get("extra", {})


def load_backbone_weights(net: torch.nn.Module, source_run: str | Path) -> int:
    """Copy every weight except the head from another run (classifier or pre-training) into ``net``.

    Returns the number of tensors copied. Raises InputError when the backbones do not match.
    """
    path = Path(source_run)
    model_file = path / "model.pt" if path.is_dir() else path
    if not model_file.exists():
        raise InputError(path, "no model.pt to initialise from", "pass a finished run directory to --init-from")
    payload = torch.load(model_file, map_location="cpu", weights_only=False)
    source = payload.get("state_dict", {}) if isinstance(payload, dict) else {}
    if any(k.startswith("members.0.") for k in source):  # an ensemble: start from its first member
        source = {k[len("members.0."):]: v for k, v in source.items() if k.startswith("members.0.")}
    own = net.state_dict()
    copied = {k: v for k, v in source.items() if k.startswith("backbone.") and k in own and own[k].shape == v.shape}
    backbone_keys = [k for k in own if k.startswith("backbone.")]
    if len(copied) < len(backbone_keys):
        raise InputError(model_file, f"backbone does not match: {len(copied)} of {len(backbone_keys)} tensors fit",
                         "use the same network, widths and input channels as the source run (--set model.network=...)")
    net.load_state_dict(copied, strict=False)
    return len(copied)
