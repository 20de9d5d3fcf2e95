"""Layer choices shared by the hand-written networks (2D or 3D variants of the same layer)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def conv_class(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


def batchnorm_class(spatial_dims: int) -> type[nn.Module]:
    """``nn.BatchNorm2d`` or ``nn.BatchNorm3d``."""
    return nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d


def conv_bn_relu(spatial_dims: int, in_ch: int, out_ch: int, n: int,
                 after_conv: Callable[[], nn.Module] | None = None) -> nn.Sequential:
    """``n`` x (3x3[x3] conv, optional ``after_conv()`` layer, batch norm, ReLU), the first conv
    ``in_ch -> out_ch``. Shapes: ``(B, in_ch, *S)`` -> ``(B, out_ch, *S)``."""
    conv, norm = conv_class(spatial_dims), batchnorm_class(spatial_dims)
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(conv(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=False))
        if after_conv is not None:
            layers.append(after_conv())
        layers += [norm(out_ch), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)
