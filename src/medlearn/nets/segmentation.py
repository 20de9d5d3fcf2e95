"""Segmentation networks by name: MONAI's implementations, plus our SegNet.

Every constructor takes ``spatial_dims, in_channels, out_channels, channels, strides`` (the topology
the planner derives from the patch size) and returns a module mapping ``(B, C_in, *spatial)`` to
``(B, C_out, *spatial)`` logits.

- ``unet`` / ``unet3d``: U-Net (Ronneberger et al., MICCAI 2015; 3D: Cicek et al., MICCAI 2016) as
  MONAI's residual-unit UNet (Kerfoot et al. 2018).
- ``vnet``: V-Net (Milletari et al., 3DV 2016), MONAI; fixed depth (input divisible by 16).
- ``attention_unet``: Attention U-Net (Oktay et al., MIDL 2018), MONAI.
- ``segresnet``: SegResNet (Myronenko, BrainLes 2018), MONAI.
- ``segnet``: SegNet (Badrinarayanan et al., TPAMI 2017), :mod:`medlearn.nets.segnet`.
- ``sa_unet``: SA-UNet (Guo et al., ICPR 2020), DropBlock + spatial attention, :mod:`medlearn.nets.sa_unet`;
  ``dropout`` is its DropBlock fraction (the paper's 0.18 on DRIVE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from medlearn.nets.registry import register_network
from medlearn.nets.sa_unet import SAUNet
from medlearn.nets.segnet import SegNet

SEGMENTATION_NETWORKS = ("unet", "unet3d", "vnet", "attention_unet", "segresnet", "segnet", "sa_unet")


def required_divisor(name: str, strides: Sequence[int]) -> int:
    """Spatial sizes the network accepts must be multiples of this number."""
    if name == "vnet":
        return 16
    factor = 1
    for s in strides:
        factor *= int(s)
    return factor


@register_network("unet")
def unet(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int] = (16, 32, 64, 128, 256),
         strides: Sequence[int] = (2, 2, 2, 2), num_res_units: int = 2, dropout: float = 0.0,
         norm: str = "batch") -> nn.Module:
    # batch norm (not MONAI's default instance norm): inference is then purely convolutional, so one
    # whole-image pass and a sliding window give the same output
    from monai.networks.nets import UNet

    return UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                channels=tuple(channels), strides=tuple(strides), num_res_units=num_res_units, dropout=dropout,
                norm=norm)


@register_network("unet3d")
def unet3d(spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
           channels: Sequence[int] = (16, 32, 64, 128, 256), strides: Sequence[int] = (2, 2, 2, 2),
           num_res_units: int = 2, dropout: float = 0.0) -> nn.Module:
    if spatial_dims != 3:
        raise ValueError(f"unet3d is the 3D U-Net; got spatial_dims={spatial_dims} (use 'unet' for 2D)")
    return unet(3, in_channels, out_channels, channels, strides, num_res_units, dropout)


@register_network("vnet")
def vnet(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int] = (),
         strides: Sequence[int] = (), dropout: float = 0.0) -> nn.Module:
    from monai.networks.nets import VNet

    # MONAI's VNet repeats the input 16 times in its first block, so in_channels must divide 16.
    if 16 % in_channels:
        raise ValueError(f"vnet needs in_channels dividing 16, got {in_channels}")
    return VNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                dropout_prob_down=dropout, dropout_prob_up=(dropout, dropout))


@register_network("attention_unet")
def attention_unet(spatial_dims: int, in_channels: int, out_channels: int,
                   channels: Sequence[int] = (16, 32, 64, 128, 256), strides: Sequence[int] = (2, 2, 2, 2),
                   dropout: float = 0.0) -> nn.Module:
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                         channels=tuple(channels), strides=tuple(strides), dropout=dropout)


@register_network("segresnet")
def segresnet(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int] = (16, 32, 64, 128),
              strides: Sequence[int] = (2, 2, 2), dropout: float = 0.0) -> nn.Module:
    from monai.networks.nets import SegResNet

    depth = len(tuple(strides)) + 1
    blocks = (1, 2, 2, 4, 4, 4)[:depth]
    init = int(tuple(channels)[0])
    return SegResNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                     init_filters=init, blocks_down=blocks, blocks_up=(1,) * (depth - 1),
                     dropout_prob=dropout or None, norm=("GROUP", {"num_groups": math.gcd(8, init)}))


@register_network("segnet")
def segnet(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int] = (32, 64, 128, 256),
           strides: Sequence[int] = (2, 2, 2), dropout: float = 0.0) -> nn.Module:
    # SegNet pools after every stage: one stage per stride, plus none at the bottom
    n_stages = max(1, len(tuple(strides)))
    return SegNet(spatial_dims, in_channels, out_channels, tuple(channels)[:n_stages])


@register_network("sa_unet")
def sa_unet(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int] = (16, 32, 64, 128),
            strides: Sequence[int] = (2, 2, 2), dropout: float = 0.0) -> nn.Module:
    if any(int(s) != 2 for s in strides):
        raise ValueError(f"sa_unet down-samples by 2 at every level, got strides {tuple(strides)}")
    levels = tuple(channels)[: len(tuple(strides)) + 1]
    return SAUNet(spatial_dims, in_channels, out_channels, levels, drop_prob=dropout)
