"""The segmenter's pipeline as one ONNX graph: channel selection -> per-image intensity normalisation ->
zero-padding to the network's divisor -> the network (the ensemble's mean logits) -> softmax and argmax.

Input ``image``: raw intensities ``(1, C, X, Y[, Z])`` on the plan's target spacing (metadata
``target_spacing``; resampling to it stays outside the graph, as it needs the image's own spacing), in
medlearn's axis order (X = image columns), any spatial size. Outputs ``probabilities`` ``(1, K, *S)`` and
``labels`` ``(1, *S)`` (int64). The ROI-restricted normalisation and largest-component filtering of the
Python pipeline are not in the graph (metadata ``not_in_graph``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.imaging.export import export_pipeline
from medlearn.tasks.segment.plan import SegmentationPlan


class SegmenterPipeline(nn.Module):
    """Raw image ``(1, C, *S)`` at the target spacing -> probabilities ``(1, K, *S)`` and labels ``(1, *S)``."""

    def __init__(self, plan: SegmentationPlan, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()
        pre = plan.preprocessing
        self.channels = list(pre.input_channels)
        self.schemes = list(pre.normalization)
        self.ct = [list(s) if s else [0.0, 0.0, 0.0, 1.0] for s in pre.ct_stats] or [[0.0, 0.0, 0.0, 1.0]] * len(
            self.schemes)
        self.divisor = int(plan.divisor)
        self.ndim = plan.ndim

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for c, scheme in enumerate(self.schemes):
            channel = x[:, self.channels[c]:self.channels[c] + 1]
            if scheme == "ct":
                lo, hi, mean, std = self.ct[c]
                channel = (channel.clamp(lo, hi) - mean) / max(std, 1e-6)
            elif scheme in ("zscore", "clahe"):  # CLAHE itself is not expressible: z-score only
                channel = (channel - channel.mean()) / channel.std(unbiased=False).clamp_min(1e-6)
            out.append(channel)
        return torch.cat(out, dim=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._normalise(image)
        sizes = x.shape[2:]
        pads: list[Any] = []
        for s in reversed(sizes):  # F.pad wants the last axis first
            target = (s + self.divisor - 1) // self.divisor * self.divisor
            pads += [(target - s) // 2, target - s - (target - s) // 2]
        logits = self.net(F.pad(x, pads))
        crop = [slice(None), slice(None)]
        for i, s in enumerate(sizes):
            start = pads[2 * (self.ndim - 1 - i)]
            crop.append(slice(start, start + s))
        probabilities = torch.softmax(logits[tuple(crop)], dim=1)
        return probabilities, probabilities.argmax(dim=1)


def export_segmenter(plan: SegmentationPlan, net: nn.Module, path: str | Path,
                     postprocessing: dict[str, Any]) -> dict[str, Any]:
    """Write the pipeline to ``path`` with its metadata; returns the metadata."""
    from medlearn import __version__

    size = max(plan.divisor, 16)
    example = torch.zeros((1, max(plan.preprocessing.input_channels) + 1, *(size,) * plan.ndim))
    spatial = {2 + i: f"s{i}" for i in range(plan.ndim)}
    label_axes = {1 + i: f"s{i}" for i in range(plan.ndim)}
    metadata = {"medlearn_version": __version__, "task": "segment", "label_names": plan.label_names,
                "channel_names": plan.channel_names, "spatial_dims": plan.ndim,
                "target_spacing": plan.preprocessing.target_spacing, "normalization": plan.preprocessing.normalization,
                "axis_order": "N, C, X (columns), Y (rows)[, Z]", "ensemble": plan.train.ensemble,
                "postprocessing": postprocessing,
                "not_in_graph": "resampling to target_spacing; ROI-restricted normalisation; largest-component "
                                "filtering; CLAHE (z-score only)", "plan": plan.to_dict()}
    return export_pipeline(SegmenterPipeline(plan, net), example, path, input_name="image",
                           output_names=["probabilities", "labels"],
                           dynamic_axes={"image": spatial, "probabilities": spatial, "labels": label_axes},
                           metadata=metadata)
