"""Name -> network constructor registry, so plans and the CLI refer to networks by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from medlearn.errors import InputError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_network(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn

    return decorate


def list_networks() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_network(name: str, **kwargs: Any) -> nn.Module:
    _load_builtin()
    if name not in _REGISTRY:
        raise InputError("network", f"unknown network '{name}'", f"choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def _load_builtin() -> None:
    import importlib
    import importlib.util

    for module in ("medlearn.nets.classification", "medlearn.nets.segmentation"):
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
