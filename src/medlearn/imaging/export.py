"""Whole-pipeline ONNX export shared by the image tasks, and a reader that needs only onnxruntime.

A task wraps what ONNX can express of its pipeline (intensity normalisation, resizing to the network's
input, the ensemble, test-time flips, the output activation) in one ``torch.nn.Module`` and calls
:func:`export_pipeline`; what ONNX cannot hold (label names, spacing, thresholds, the axis convention,
the plan version) goes into the graph's metadata (``metadata_props``, string values; JSON for
structured ones). ``docs/export.md`` shows a medlearn-free reader; :func:`run_exported` is the same
reader, used by the parity tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.io import atomic_path

OPSET = 18


def export_pipeline(module: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: str | Path, *,
                    input_name: str | Sequence[str], output_names: Sequence[str],
                    dynamic_axes: dict[str, dict[int, str]], metadata: dict[str, Any]) -> dict[str, str]:
    """Export ``module(*example)`` as ONNX (TorchScript-based exporter, opset 18) with ``metadata``;
    atomic. Returns the metadata as written (strings)."""
    import onnx

    module = module.eval()
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    with atomic_path(path) as tmp, torch.no_grad():
        inputs = example if isinstance(example, tuple) else (example,)
        names = [input_name] if isinstance(input_name, str) else list(input_name)
        torch.onnx.export(module, inputs, str(tmp), input_names=names, output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
        graph = onnx.load(str(tmp))
        del graph.metadata_props[:]
        for key, value in props.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
    return props


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported graph (JSON values decoded)."""
    import onnxruntime as ort

    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_exported(path: str | Path, *arrays: np.ndarray) -> list[np.ndarray]:
    """Run an exported graph on its input arrays (in order) with onnxruntime alone (what a deployment does)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for spec, array in zip(session.get_inputs(), arrays, strict=True):
        dtype = np.int64 if "int64" in spec.type else np.float32
        feeds[spec.name] = np.ascontiguousarray(array, dtype=dtype)
    return session.run(None, feeds)
