"""SA-UNet: a U-Net regularised by DropBlock, with spatial attention at the bottleneck.

Guo, Szemenyei, Yi, Wang, Chen & Fan, "SA-UNet: Spatial Attention U-Net for Retinal Vessel
Segmentation", ICPR 2020 (arXiv:2004.03696). Each convolution is followed by DropBlock (Ghiasi, Lin &
Le, "DropBlock: A regularization method for convolutional networks", NeurIPS 2018), batch norm and
ReLU; the bottleneck's features are reweighted by a spatial attention map (Woo et al., CBAM, ECCV
2018): a ``7x7`` convolution over the channel-wise mean and max, squashed by a sigmoid. The paper's
point is that on small datasets such as DRIVE (20 training images) structured dropout, which removes
contiguous regions of a feature map rather than single units, regularises convolutions where plain
dropout does little. MONAI has neither block, hence this module. 2D and 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.nets.layers import conv_bn_relu, conv_class


class DropBlock(nn.Module):
    """Zero random ``block_size``-wide cubes of each feature map during training (Ghiasi et al. 2018).

    ``drop_prob`` is the expected fraction of units dropped; block centres are drawn with probability
    ``drop_prob / block_size ** dims`` (the paper's gamma without its edge correction) and the kept
    units are rescaled so the expected activation is unchanged. Identity in eval mode. The block is
    capped at the feature map's smallest side, so deep, coarse levels are not wiped out.

    Shapes: ``(B, C, *spatial)`` -> same.
    """

    def __init__(self, drop_prob: float, block_size: int = 7) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        if block_size < 1 or block_size % 2 == 0:
            raise ValueError(f"block_size must be a positive odd number, got {block_size}")
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        dims = x.dim() - 2
        size = min(self.block_size, *x.shape[2:])
        size -= 1 - size % 2  # odd, so the pooled mask keeps the map's size
        gamma = self.drop_prob / size**dims
        centres = (torch.rand_like(x) < gamma).to(x.dtype)
        # grow each centre into a block one axis at a time (a separable max filter: 3*size, not size**3)
        pool = F.max_pool2d if dims == 2 else F.max_pool3d
        for axis in range(dims):
            kernel = [1] * dims
            kernel[axis] = size
            centres = pool(centres, kernel_size=kernel, stride=1, padding=[k // 2 for k in kernel])
        keep = 1.0 - centres
        # the kept fraction in float32: a bfloat16 sum of millions of ones is off by percents
        kept = keep.float().mean().clamp_min(1.0 / keep.numel())
        return x * keep * (1.0 / kept).to(x.dtype)


class SpatialAttention(nn.Module):
    """Reweight every position by ``sigmoid(conv([mean_c(x), max_c(x)]))`` (CBAM's spatial branch).

    Shapes: ``(B, C, *spatial)`` -> same.
    """

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        conv = conv_class(spatial_dims)
        self.conv = conv(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(summary))


def _conv_block(dims: int, in_ch: int, out_ch: int, drop_prob: float, block_size: int) -> nn.Sequential:
    """Two (conv, DropBlock, BN, ReLU), the paper's order."""
    return conv_bn_relu(dims, in_ch, out_ch, 2, after_conv=lambda: DropBlock(drop_prob, block_size))


class SAUNet(nn.Module):
    """SA-UNet (Guo et al. 2020).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: input channels and output logits (classes).
        channels: features per level, the last one the bottleneck's, e.g. ``(16, 32, 64, 128)`` as in
            the paper; one ``2x`` down-sampling between consecutive levels.
        drop_prob: DropBlock's drop fraction (the paper: keep 0.82 on DRIVE, i.e. 0.18).
        block_size: DropBlock's block side (the paper: 7).

    Shapes: input ``(B, in_channels, *spatial)`` with every spatial size divisible by
    ``2 ** (len(channels) - 1)``; output ``(B, out_channels, *spatial)`` logits.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (16, 32, 64, 128), drop_prob: float = 0.18, block_size: int = 7) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        chans = tuple(int(c) for c in channels)
        if len(chans) < 2:
            raise ValueError(f"SA-UNet needs at least two levels, got channels={chans}")
        conv = conv_class(spatial_dims)
        up = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        self.pool = nn.MaxPool2d(2) if spatial_dims == 2 else nn.MaxPool3d(2)
        self.encoders = nn.ModuleList()
        prev = in_channels
        for ch in chans[:-1]:
            self.encoders.append(_conv_block(spatial_dims, prev, ch, drop_prob, block_size))
            prev = ch
        # the bottleneck's two convolutions with the attention between them, as in the paper
        block = _conv_block(spatial_dims, prev, chans[-1], drop_prob, block_size)
        self.bottleneck = nn.Sequential(*block[:4], SpatialAttention(spatial_dims), *block[4:])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(len(chans) - 1)):
            self.ups.append(up(chans[i + 1], chans[i], 2, stride=2))
            self.decoders.append(_conv_block(spatial_dims, 2 * chans[i], chans[i], drop_prob, block_size))
        self.head = conv(chans[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)
