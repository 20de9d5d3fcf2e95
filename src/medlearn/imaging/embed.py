"""Image embeddings from a trained network's ``embed`` (the input to its head), for patient-level
aggregation today and content-based retrieval next."""

from __future__ import annotations

import numpy as np
import torch


def embed_images(net: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Embeddings ``(N, F)`` of normalised images ``(N, C, *spatial)`` from ``net.embed``."""
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32))
            out.append(net.embed(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
