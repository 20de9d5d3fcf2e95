"""The classifier's whole pipeline as one ONNX graph: resize -> intensity normalisation -> network (the
ensemble) -> flip test-time augmentation -> class probabilities.

Input ``image``: raw intensities ``(N, C, X, Y[, Z])`` in medlearn's axis order (X = image columns; a
numpy raster ``(H, W)`` is ``image.T``), any batch size; with ``data.resize`` in the plan any spatial size
(resized inside the graph), else exactly ``input_size``. Output ``probabilities`` ``(N, K)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.imaging.export import export_pipeline
from medlearn.tasks.classify.plan import ClassificationPlan
from medlearn.transforms.intensity import CT_WINDOW


class ClassifierPipeline(nn.Module):
    """Raw images ``(N, C, *S)`` -> probabilities ``(N, K)``, as :meth:`Classifier.predict_proba` computes them."""

    def __init__(self, plan: ClassificationPlan, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()
        self.plan = plan
        d = plan.data
        self.method = d.normalization
        self.mean = float(d.mean) if d.mean is not None else 0.0
        self.std = float(d.std) if d.std is not None else 1.0
        self.size = tuple(int(s) for s in plan.input_size)
        self.resize = plan.data.resize is not None
        self.tta = plan.flip_tta
        self.task = plan.task

    def _proba(self, logits: torch.Tensor) -> torch.Tensor:
        if self.task in ("binary", "multiclass"):
            return torch.softmax(logits, dim=1)
        if self.task == "multilabel":
            return torch.sigmoid(logits)
        # ordinal (CORAL): monotone cumulative P(y > k) by a running minimum, differenced into K classes
        greater = torch.sigmoid(logits)
        columns = [greater[:, :1]]
        for k in range(1, greater.shape[1]):
            columns.append(torch.minimum(columns[-1], greater[:, k:k + 1]))
        greater = torch.cat(columns, dim=1)
        ones, zeros = torch.ones_like(greater[:, :1]), torch.zeros_like(greater[:, :1])
        return (torch.cat([ones, greater], 1) - torch.cat([greater, zeros], 1)).clamp_min(0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image
        if self.resize:
            mode = "bilinear" if len(self.size) == 2 else "trilinear"
            x = F.interpolate(x, size=self.size, mode=mode, align_corners=False)
        if self.method == "ct":
            x = x.clamp(*CT_WINDOW)
        if self.method in ("zscore", "ct"):
            x = (x - self.mean) / self.std
        elif self.method == "unit":
            x = x / 255.0
        views = [x]
        if self.tta:
            views += [x.flip(2), x.flip(3), x.flip(2).flip(3)]
        total = self._proba(self.net(views[0]))
        for view in views[1:]:
            total = total + self._proba(self.net(view))
        return total / len(views)


def export_classifier(plan: ClassificationPlan, net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Write the pipeline to ``path`` with its metadata; returns the metadata."""
    from medlearn import __version__

    example = torch.zeros((1, plan.in_channels, *plan.input_size))
    spatial = {2 + i: f"s{i}" for i in range(plan.spatial_dims)} if plan.data.resize else {}
    metadata = {"medlearn_version": __version__, "task": "classify", "classification": plan.task,
                "label_names": plan.label_names, "input_size": plan.input_size, "channels": plan.in_channels,
                "spatial_dims": plan.spatial_dims, "axis_order": "N, C, X (columns), Y (rows)[, Z]",
                "normalization": plan.data.normalization, "threshold": 0.5 if plan.task in ("binary", "multilabel")
                else None, "flip_tta": plan.flip_tta, "ensemble": plan.train.ensemble,
                "resize": ("in the graph (linear interpolation, the Resize ONNX holds; training resampled with "
                           "area interpolation, so feed images at input_size for exact parity)") if plan.data.resize
                else "none: images must have input_size", "plan": plan.to_dict()}
    return export_pipeline(ClassifierPipeline(plan, net), example, path, input_name="image",
                           output_names=["probabilities"],
                           dynamic_axes={"image": {0: "batch", **spatial}, "probabilities": {0: "batch"}},
                           metadata=metadata)
