"""What the web viewer draws for an image result: the image and an overlay (a label mask or a heat map)
as 8-bit volumes, small enough to send in one response.

Layout of a payload (JSON): ``shape`` ``[nx, ny, nz]`` (nz = 1 for 2D); ``image`` base64 of ``nz * ny * nx``
bytes (x fastest, then y, then z: row-major ``(Z, Y, X)``), or ``3 * nz * ny * nx`` interleaved RGB when
``channels`` is 3; ``range`` ``[lo, hi]``: the intensity that bytes 0 and 255 stand for (window/level in
the image's own units); ``spacing`` (when known) mm per voxel along x, y, z; ``overlay`` base64 of
``nz * ny * nx`` bytes — label values (``overlay_kind``
"mask", with ``labels``) or a heat map scaled to 0..255 ("heatmap"). Volumes larger than
:data:`MAX_VOXELS` are subsampled with a stride per axis (``stride``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_VOXELS = 192 ** 3


def _stride(shape: Sequence[int], limit: int = MAX_VOXELS) -> int:
    total = math.prod(shape)
    return 1 if total <= limit else int(math.ceil((total / limit) ** (1 / len(shape))))


def _bytes(volume: np.ndarray) -> str:
    """``(X, Y[, Z])`` uint8 -> base64 of its ``(Z, Y, X)`` row-major bytes."""
    if volume.ndim == 2:
        volume = volume[:, :, None]
    return base64.b64encode(np.ascontiguousarray(np.transpose(volume, (2, 1, 0))).tobytes()).decode("ascii")


def viewer_volume(name: str, image: np.ndarray, overlay: np.ndarray | None = None, overlay_kind: str = "mask",
                  labels: Sequence[str] | None = None, spacing: Sequence[float] | None = None) -> dict[str, Any]:
    """A viewer payload for ``image`` ``(C, X, Y[, Z])`` (raw intensities) and an optional ``overlay``
    ``(X, Y[, Z])``: integer labels (``overlay_kind="mask"``) or a map in [0, 1] (``"heatmap"``).
    ``spacing`` (mm per axis) lets the viewer draw anisotropic voxels at their aspect ratio."""
    image = np.asarray(image, np.float32)
    spatial = image.shape[1:]
    step = _stride(spatial)
    cut = (slice(None),) + tuple(slice(None, None, step) for _ in spatial)
    image = image[cut]
    rgb = image.shape[0] == 3 and image.ndim == 3
    grey = image if rgb else image[:1]
    lo, hi = float(np.percentile(grey, 0.5)), float(np.percentile(grey, 99.5))
    if hi <= lo:
        lo, hi = float(grey.min()), float(grey.max()) + 1e-6
    scaled = np.clip((grey - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    if rgb:
        encoded = base64.b64encode(np.ascontiguousarray(np.transpose(scaled, (2, 1, 0))).tobytes()).decode("ascii")
    else:
        encoded = _bytes(scaled[0])
    shape = list(grey.shape[1:]) + ([1] if grey.ndim == 3 else [])
    payload: dict[str, Any] = {"name": name, "shape": shape, "channels": 3 if rgb else 1, "image": encoded,
                               "range": [lo, hi], "stride": step}
    if spacing is not None:
        payload["spacing"] = [float(s) * step for s in spacing] + ([1.0] if len(spacing) == 2 else [])
    if overlay is not None:
        over = np.asarray(overlay)[cut[1:]]
        if overlay_kind == "heatmap":
            over = np.clip(np.nan_to_num(over.astype(np.float32)) * 255.0, 0, 255)
        payload.update({"overlay": _bytes(over.astype(np.uint8)), "overlay_kind": overlay_kind})
        if labels is not None:
            payload["labels"] = list(labels)
    return payload
