"""The registration network as one ONNX graph (``medlearn export``).

Input ``pair`` ``(N, 2, *W)`` float32: channel 0 the moving image, channel 1 the fixed one, both
*preprocessed* as the model does it (:mod:`.preprocess`): normalised per image (metadata
``normalization``: percentile = clip to the 0.5/99.5 percentiles, scale to [0, 1]) and resampled to the
working grid ``W`` (metadata ``working_shape``; corner-aligned linear resampling, blurred with sigma half
the downsampling factor before), the moving one affinely pre-aligned by the plan's affine stage when it has
one (metadata ``prealign``; :mod:`.affine`). Output ``ddf`` ``(N, ndim, *W)``: the displacement in working-grid voxels,
pulling (``warped(x) = moving(x + ddf(x))``, channel ``i`` along axis ``i``). To apply it to the original
fixed grid ``S``, resize it (corner-aligned, linear) and multiply channel ``i`` by ``(S_i - 1) / (W_i - 1)``
(metadata ``field_convention``); with the affine stage the whole field is ``compose(affine, ddf)``. The
affine stage, instance optimisation (``inference.refine_steps``) and the warp itself are not in the graph
(``not_in_graph``). Networks that warp inside (diffeomorphic, affine+voxelmorph) need
ONNX's 3D GridSample, absent from opset 18, in 3D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from medlearn.errors import InputError
from medlearn.imaging.export import export_pipeline
from medlearn.tasks.register.plan import RegistrationPlan

__all__ = ["RegistrationGraph", "export_registrator"]

#: networks that call grid_sample inside (scaling and squaring, the affine-then-deformable warp)
WARPS_INSIDE = ("diffeomorphic", "affine+voxelmorph")


class RegistrationGraph(nn.Module):
    """``pair (N, 2, *W)`` = (moving, fixed) -> ``ddf (N, ndim, *W)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.net(pair[:, 0:1], pair[:, 1:2])


def export_registrator(plan: RegistrationPlan, net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Write the graph to ``path`` with its metadata; returns the metadata."""
    from medlearn import __version__

    if plan.ndim == 3 and plan.network.name in WARPS_INSIDE:
        raise InputError(plan.network.name, "this 3D network warps inside (grid_sample), which ONNX opset 18 cannot "
                         "express in 3D", "export a voxelmorph or bspline model, or predict with `medlearn register "
                         "predict`")
    shape = list(plan.data.working_shape)
    example = torch.zeros((1, 2, *shape))
    axes = {0: "n"}
    metadata = {"medlearn_version": __version__, "task": "register", "spatial_dims": plan.ndim,
                "network": plan.network.name, "working_shape": shape, "normalization": plan.data.normalization,
                "input": "pair (N, 2, *working_shape): channel 0 moving, channel 1 fixed, preprocessed",
                "axis_order": "N, C, X (columns), Y (rows)[, Z]",
                "field_convention": "ddf (N, ndim, *working_shape) in working-grid voxels, pulling: warped(x) = "
                                    "moving(x + ddf(x)); on the fixed grid S: resize (align_corners) and scale "
                                    "channel i by (S_i - 1) / (W_i - 1)",
                "ensemble": plan.train.ensemble, "prealign": plan.prealign.method if plan.prealigned else "none",
                "not_in_graph": "normalisation and resampling to the working grid; the optimised affine stage "
                                "(prealign; the moving channel is expected affinely aligned, the full field is "
                                "compose(affine, ddf)); instance optimisation (inference.refine_steps); resizing "
                                "the field to the fixed grid; the warp",
                "plan": plan.to_dict()}
    return export_pipeline(RegistrationGraph(net), example, path, input_name="pair", output_names=["ddf"],
                           dynamic_axes={"pair": axes, "ddf": axes}, metadata=metadata)
