"""Whole-image and sliding-window prediction, optional mirroring TTA, ONNX Runtime fast path.

A fully convolutional network can predict an image that fits in memory in one pass: with 50%
overlap a sliding window computes every voxel about 2^ndim times. Larger images use MONAI's
``sliding_window_inference`` with Gaussian blending (as nnU-Net, Isensee et al. 2021). The network
runs either in eager PyTorch under ``torch.inference_mode`` or as an ONNX Runtime session (faster on
CPU). Input ``(C, *S)`` float32 preprocessed image; output ``(K, *S)`` float32 softmax probabilities.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def export_onnx(net: nn.Module, path: Path, in_channels: int, ndim: int, divisor: int) -> Path:
    """Export ``net`` with dynamic batch and spatial axes (TorchScript-based exporter, opset 17)."""
    from medlearn.io import atomic_path

    net = net.eval()
    example = torch.zeros((1, in_channels) + (max(divisor, 16),) * ndim)
    axes = {0: "batch", **{2 + i: f"s{i}" for i in range(ndim)}}
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(net, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=17, dynamo=False)
    return path


def onnx_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session using ``threads`` intra-op threads (default: torch's setting)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class SlidingWindowPredictor:
    """Predict softmax probabilities for one preprocessed image.

    Args:
        net: torch module ``(B, C, *S) -> (B, K, *S)`` logits (ignored for the forward when a session is
            given, but still used for windows if the ONNX graph cannot run).
        patch_size: window size for images larger than ``whole_image_max_voxels``.
        divisor: spatial sizes the network accepts must be multiples of it (input is zero-padded).
        session: optional ONNX Runtime session of the same network.
        mirror: average over all flips of the spatial axes (test-time augmentation).
    """

    def __init__(self, net: nn.Module | None, patch_size: list[int], divisor: int,
                 whole_image_max_voxels: int = 2_000_000, overlap: float = 0.5, sw_batch_size: int = 4,
                 mirror: bool = False, session=None) -> None:
        if net is None and session is None:
            raise ValueError("SlidingWindowPredictor needs a network or an ONNX session")
        self.net = net.eval() if net is not None else None
        self.patch_size = tuple(int(p) for p in patch_size)
        self.divisor = int(divisor)
        self.whole_image_max_voxels = int(whole_image_max_voxels)
        self.overlap = float(overlap)
        self.sw_batch_size = int(sw_batch_size)
        self.mirror = bool(mirror)
        self.session = session

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            return torch.from_numpy(self.session.run(None, {name: x.numpy()})[0])
        assert self.net is not None
        return self.net(x)

    def _padded(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Zero-pad ``x`` to multiples of the divisor, run ``fn``, crop back."""
        shape = x.shape[2:]
        target = [math.ceil(s / self.divisor) * self.divisor for s in shape]
        pad: list[int] = []
        for s, t in reversed(list(zip(shape, target, strict=True))):
            pad += [(t - s) // 2, t - s - (t - s) // 2]
        out = fn(F.pad(x, pad) if any(pad) else x)
        crop = tuple(slice((t - s) // 2, (t - s) // 2 + s) for s, t in zip(shape, target, strict=True))
        return out[(slice(None), slice(None), *crop)]

    def logits(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(C, *S)`` -> ``(K, *S)`` logits (mirroring averaged when enabled)."""
        x = torch.as_tensor(np.asarray(image, np.float32))[None]
        ndim = x.ndim - 2
        flips = [()]
        if self.mirror:
            flips = [c for r in range(ndim + 1) for c in itertools.combinations(range(2, 2 + ndim), r)]
        total = None
        with torch.inference_mode():
            for dims in flips:
                xi = x.flip(dims) if dims else x
                out = self._one(xi)
                out = out.flip(dims) if dims else out
                total = out if total is None else total + out
        assert total is not None
        return (total / len(flips))[0]

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        if math.prod(x.shape[2:]) <= self.whole_image_max_voxels:
            return self._padded(self._forward, x)
        from monai.inferers import sliding_window_inference

        roi = tuple(min(p, math.ceil(s / self.divisor) * self.divisor) for p, s in zip(self.patch_size, x.shape[2:],
                                                                                         strict=True))
        return sliding_window_inference(x, roi, self.sw_batch_size, lambda t: self._padded(self._forward, t),
                                        overlap=self.overlap, mode="gaussian")

    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(C, *S)`` -> ``(K, *S)`` softmax probabilities as float32 numpy."""
        return torch.softmax(self.logits(image).float(), dim=0).numpy()
