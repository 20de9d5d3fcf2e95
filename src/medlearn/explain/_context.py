"""Shared plumbing for explanation methods: run a model for explanation and leave it as found.

``explaining(model)`` puts the model in eval mode, turns off in-place activations (full backward
hooks cannot see through in-place ops), freezes the parameters and keeps their ``.grad`` (only input/activation
gradients are needed; the caller's gradient buffers must not change), and on exit restores all of that and
removes every hook added to the model's modules in the meantime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


@contextlib.contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: eval mode, no in-place ops, frozen parameters, hooks cleaned up on exit."""
    modules = list(model.modules())
    training = [m.training for m in modules]
    inplace = {m: m.inplace for m in modules if isinstance(getattr(m, "inplace", None), bool)}
    requires = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    hooks_before = [{name: set(getattr(m, name, {}) or {}) for name in _HOOK_DICTS} for m in modules]
    full_backward = [getattr(m, "_is_full_backward_hook", None) for m in modules]
    try:
        model.eval()
        for m in inplace:
            m.inplace = False
        for p, _, _ in requires:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield model
    finally:
        for m, was_training in zip(modules, training, strict=True):
            m.training = was_training
        for m, value in inplace.items():
            m.inplace = value
        for p, value, grad in requires:
            p.requires_grad_(value)
            p.grad = grad  # MONAI's GradCAM calls model.zero_grad(); the caller's gradients survive
        for m, before, full in zip(modules, hooks_before, full_backward, strict=True):
            for name, keys in before.items():
                hooks = getattr(m, name, None)
                if hooks:
                    for key in [k for k in hooks if k not in keys]:
                        del hooks[key]
            if hasattr(m, "_is_full_backward_hook"):
                m._is_full_backward_hook = full


def model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def as_batch(images: torch.Tensor | np.ndarray, model: nn.Module) -> torch.Tensor:
    """``(N, C, *spatial)`` float tensor on the model's device (numpy accepted)."""
    x = torch.as_tensor(images)
    if x.ndim < 3:
        raise ValueError(f"images must be (N, C, H, W) or (N, C, H, W, D), got shape {tuple(x.shape)}")
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    return x.to(device=model_device(model), dtype=dtype if dtype.is_floating_point else torch.float32)


def normalise_maps(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """Scale each map of ``(N, *spatial)`` to [0, 1] by its own min and max (constant maps -> 0)."""
    arr = torch.as_tensor(maps).detach().float().cpu().numpy()
    flat = arr.reshape(arr.shape[0], -1)
    lo = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - lo
    out = np.where(span > 0, (flat - lo) / np.where(span > 0, span, 1.0), 0.0)
    return out.reshape(arr.shape).astype(np.float32)


def target_classes(model: nn.Module, x: torch.Tensor, class_index: int | None) -> np.ndarray:
    """``(N,)`` class to explain per image: ``class_index`` or the model's argmax."""
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits of shape (N, K), got {tuple(logits.shape)}")
    if class_index is not None:
        if not -logits.shape[1] <= class_index < logits.shape[1]:
            raise ValueError(f"class_index {class_index} is out of range for {logits.shape[1]} outputs")
        return np.full(x.shape[0], class_index % logits.shape[1], dtype=np.int64)
    return logits.argmax(dim=1).cpu().numpy()
