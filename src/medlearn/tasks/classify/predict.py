"""Batched inference for classifiers (``torch.inference_mode``, optional flip TTA)."""

from __future__ import annotations

import numpy as np
import torch

from medlearn.tasks.classify.outputs import logits_to_proba


def predict_proba(net: torch.nn.Module, images: np.ndarray, task: str, batch_size: int = 256,
                  tta: bool = False) -> np.ndarray:
    """Class probabilities ``(N, K)`` for normalised images ``(N, C, *spatial)``.

    ``tta`` averages the probabilities over the flips training augments with: every combination of
    flips along the first two spatial axes (4 views).
    """
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32))
            views = flip_views(x) if tta else [x]
            proba = torch.stack([logits_to_proba(net(v), task) for v in views]).mean(0)
            out.append(proba.numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def flip_views(x: torch.Tensor) -> list[torch.Tensor]:
    """``x (B, C, *S)`` and its flips along every subset of the first two spatial axes."""
    axes = list(range(2, min(x.ndim, 4)))
    subsets = [[]] + [[a] for a in axes] + ([axes] if len(axes) == 2 else [])
    return [x.flip(dims) if dims else x for dims in subsets]
