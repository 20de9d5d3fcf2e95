"""Explanations for image classifiers: Grad-CAM (Selvaraju et al. 2017), occlusion sensitivity
(Zeiler & Fergus 2014), gradient x input saliency, and overlays for display.

All methods take a ``torch.nn.Module`` returning logits ``(N, K)`` and images ``(N, C, H, W[, D])``,
and return numpy maps ``(N, H, W[, D])`` in [0, 1]. The model is left as it was found (mode,
in-place flags, parameter gradients, no hooks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlearn.explain.gradcam import find_target_layer, grad_cam, gradient_x_input
from medlearn.explain.occlusion import occlusion_sensitivity
from medlearn.explain.overlay import overlay, select_slice

__all__ = [
    "METHODS",
    "explain",
    "find_target_layer",
    "grad_cam",
    "gradient_x_input",
    "occlusion_sensitivity",
    "overlay",
    "select_slice",
]

METHODS = {"gradcam": grad_cam, "occlusion": occlusion_sensitivity, "saliency": gradient_x_input}


def explain(model: Any, images: Any, method: str = "gradcam", **kwargs: Any) -> np.ndarray:
    """Dispatch by name: ``"gradcam"``, ``"occlusion"`` or ``"saliency"`` (gradient x input)."""
    try:
        fn = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown explanation method {method!r}; choose from {sorted(METHODS)}") from None
    return fn(model, images, **kwargs)
