"""SegNet: an encoder-decoder that upsamples with the encoder's max-pooling indices.

Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for
Image Segmentation", IEEE TPAMI 39(12), 2017. Each encoder stage is ``convs x (conv-BN-ReLU)``
followed by max pooling that *remembers the argmax positions*; the matching decoder stage places its
input back at those positions (``MaxUnpool``), a sparse upsampling without learned weights, then
densifies it with ``convs x (conv-BN-ReLU)``. MONAI has no SegNet, hence this module. 2D and 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medlearn.nets.layers import conv_bn_relu, conv_class


class SegNet(nn.Module):
    """SegNet with pooling-index unpooling.

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: input channels and output logits (classes).
        channels: features per encoder stage, e.g. ``(32, 64, 128, 256)``; the decoder mirrors them.
        convs_per_stage: conv-BN-ReLU layers per stage (the paper's VGG-16 encoder uses 2-3).

    Shapes: input ``(B, in_channels, H, W[, D])`` with every spatial size divisible by
    ``2 ** len(channels)``; output ``(B, out_channels, H, W[, D])`` logits.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int] = (32, 64, 128, 256), convs_per_stage: int = 2) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(channels) < 1 or convs_per_stage < 1:
            raise ValueError(f"need at least one stage and one conv per stage, got channels={tuple(channels)}, "
                             f"convs_per_stage={convs_per_stage}")
        self.spatial_dims = spatial_dims
        self.channels = tuple(int(c) for c in channels)
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        unpool = nn.MaxUnpool2d if spatial_dims == 2 else nn.MaxUnpool3d
        self.encoders = nn.ModuleList()
        prev = in_channels
        for ch in self.channels:
            self.encoders.append(conv_bn_relu(spatial_dims, prev, ch, convs_per_stage))
            prev = ch
        self.pool = pool(2, stride=2, return_indices=True)
        self.unpool = unpool(2, stride=2)
        self.decoders = nn.ModuleList()
        # decoder i undoes encoder i (reverse order); it maps channels[i] -> channels[i-1]
        for i in reversed(range(len(self.channels))):
            out = self.channels[i - 1] if i > 0 else self.channels[0]
            self.decoders.append(conv_bn_relu(spatial_dims, self.channels[i], out, convs_per_stage))
        self.head = conv_class(spatial_dims)(self.channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** len(self.channels)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"SegNet needs spatial sizes divisible by {factor}, got {tuple(x.shape[2:])}")
        indices, sizes = [], []
        for encoder in self.encoders:
            x = encoder(x)
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        for decoder, idx, size in zip(self.decoders, reversed(indices), reversed(sizes), strict=True):
            x = self.unpool(x, idx, output_size=size)
            x = decoder(x)
        return self.head(x)
