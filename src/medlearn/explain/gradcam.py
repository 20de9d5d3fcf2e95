"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017) through MONAI's :class:`monai.visualize.GradCAM`, with gradient x input
saliency (Shrikumar et al. 2016; Simonyan et al. 2014) for models without convolutions.

Shapes: images ``(N, C, H, W)`` or ``(N, C, H, W, D)``; maps ``(N, H, W)`` or ``(N, H, W, D)``,
each scaled to [0, 1] (1 = most important for the explained class).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medlearn.explain._context import as_batch, explaining, normalise_maps, target_classes

__all__ = ["find_target_layer", "grad_cam", "gradient_x_input", "spatial_modules"]


def spatial_modules(model: nn.Module, example: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Sub-modules holding a convolution whose output is a feature map, in the order they finish
    on ``example``, with their output spatial shapes (a module called twice is listed at its last
    call)."""
    has_conv = {
        name
        for name, module in model.named_modules()
        if name and any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())
    }
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim == example.ndim:
                seen.pop(name, None)  # keep the last call's position
                seen[name] = tuple(output.shape[2:])

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n in has_conv]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return list(seen.items())


def find_target_layer(model: nn.Module, example: torch.Tensor) -> str | None:
    """Name of the last convolutional stage whose output still resolves space (every dim >= 2).

    "Stage" is any sub-module containing a convolution (a conv layer, a residual block, a ResNet
    ``layer4``, a DenseNet ``features``), ranked by when it finishes in the forward pass, so the
    pick is the output of the deepest block rather than, say, a shortcut convolution that runs last
    inside the block. Stages with 1x1 outputs are skipped: the last stage of a deep net on small
    images (ResNet-18 on 28x28 MedMNIST) is 1x1, where Grad-CAM is a constant. Returns None when
    no stage qualifies (e.g. an MLP).
    """
    stages = spatial_modules(model, example[:1])
    resolved = [name for name, shape in stages if shape and min(shape) >= 2]
    return resolved[-1] if resolved else None


def gradient_x_input(model: nn.Module, images: torch.Tensor, class_index: int | None = None) -> np.ndarray:
    """|gradient x input| of the class logit, summed over channels: ``(N, *spatial)`` in [0, 1]."""
    with explaining(model):
        x = as_batch(images, model)
        classes = torch.as_tensor(target_classes(model, x, class_index), device=x.device)
        x = x.detach().clone().requires_grad_(True)
        logits = model(x)
        logits.gather(1, classes[:, None]).sum().backward()
        saliency = (x.grad * x).abs().sum(dim=1)
    return normalise_maps(saliency)


def grad_cam(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    target_layer: str | None = None,
    class_index: int | None = None,
) -> np.ndarray:
    """Grad-CAM maps of ``class_index`` (default: each image's predicted class).

    Args:
        model: a ``torch.nn.Module`` returning logits ``(N, K)``; left in its original mode, with no
            hooks attached and its parameters' gradients untouched.
        images: ``(N, C, H, W)`` or ``(N, C, H, W, D)``.
        target_layer: name of the module (as in ``model.named_modules()``) whose activations are
            weighted; default :func:`find_target_layer`. Models without a usable convolution fall
            back to :func:`gradient_x_input`.
        class_index: class to explain for all images; None = argmax per image.

    Returns:
        ``(N, H, W[, D])`` float32 maps in [0, 1], upsampled (bi/trilinearly) to the input size.
    """
    from monai.visualize import GradCAM

    with explaining(model):
        x = as_batch(images, model)
        layer = target_layer if target_layer is not None else find_target_layer(model, x)
        if layer is None:
            return gradient_x_input(model, x, class_index)
        names = dict(model.named_modules())
        if layer not in names:
            raise ValueError(f"target_layer {layer!r} is not a module of the model; see model.named_modules()")
        classes = target_classes(model, x, class_index)
        # MONAI's GradCAM takes one class index for the whole batch: run it once per class present.
        cam = GradCAM(nn_module=model, target_layers=layer, postprocessing=lambda m: m)
        maps = torch.zeros((x.shape[0], *x.shape[2:]), dtype=torch.float32)
        x = x.detach().clone().requires_grad_(True)  # parameters are frozen: let gradients flow from the input
        for c in np.unique(classes):
            rows = np.flatnonzero(classes == c)
            out = cam(x=x[rows], class_idx=int(c))
            maps[torch.as_tensor(rows)] = out[:, 0].detach().float().cpu()
    return normalise_maps(maps)
