"""Batched inference for classifiers (``torch.inference_mode``, optional flip TTA)."""

from __future__ import annotations

import numpy as np
import torch

from medlearn.tasks.classify.outputs import logits_to_proba


def predict_proba(net: torch.nn.Module, images: np.ndarray, task: str, batch_size: int = 256,
                  tta: bool = False) -> np.ndarray:
    """Class probabilities ``(N, K)`` for normalised images ``(N, C, *spatial)``.

    ``tta`` averages the probabilities of the image and its flip along the first spatial axis.
    """
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32))
            proba = logits_to_proba(net(x), task)
            if tta:
                proba = 0.5 * (proba + logits_to_proba(net(torch.flip(x, dims=[2])), task))
            out.append(proba.numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embed_images(net: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Embeddings ``(N, F)`` from ``net.embed`` (the input to the classification head)."""
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32))
            out.append(net.embed(x).numpy())
    return np.concatenate(out)
