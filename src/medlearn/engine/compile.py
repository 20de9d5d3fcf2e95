"""Optional ``torch.compile`` of a network's training forward, with a safe eager fallback.

Inductor generates C++ kernels on CPU, so it needs a C++ compiler; without one (or when a graph
cannot be compiled) the network runs eagerly, as it would without compilation.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable

import torch


def compiler_available() -> bool:
    """True when inductor can build CPU kernels (a C++ compiler is on PATH)."""
    return any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def compiled_forward(net: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """``net`` compiled with inductor (same parameters, so ``net``'s state_dict is unchanged), or ``net``."""
    if not compiler_available():
        warnings.warn("torch.compile skipped: no C++ compiler on PATH; training runs eagerly", stacklevel=2)
        return net
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a graph that fails to compile falls back to eager
    return torch.compile(net)
