"""SegNet (pooling-index unpooling) and the segmentation network registry."""

from __future__ import annotations

import pytest
import torch

from medlearn.nets import build_network
from medlearn.nets.segmentation import SEGMENTATION_NETWORKS
from medlearn.nets.segnet import SegNet


@pytest.mark.parametrize("dims", [2, 3])
def test_segnet_shapes(dims):
    net = SegNet(dims, in_channels=2, out_channels=3, channels=(4, 8))
    x = torch.randn((2, 2) + (16,) * dims)
    assert net(x).shape == (2, 3) + (16,) * dims


def test_segnet_unpools_to_the_argmax_positions():
    net = SegNet(2, 1, 1, channels=(1,), convs_per_stage=1)
    x = torch.randn(1, 1, 8, 8)
    features = net.encoders[0](x)
    pooled, idx = net.pool(features)
    restored = net.unpool(pooled, idx, output_size=features.shape)
    # every pooled maximum goes back exactly where it came from; all other positions are zero
    assert torch.equal(restored.flatten()[idx.flatten()], pooled.flatten())
    assert int((restored != 0).sum()) <= pooled.numel()


def test_segnet_rejects_bad_sizes_and_args():
    with pytest.raises(ValueError, match="divisible by 4"):
        SegNet(2, 1, 2, channels=(4, 8))(torch.randn(1, 1, 18, 16))
    with pytest.raises(ValueError, match="spatial_dims"):
        SegNet(4, 1, 2)


def test_segnet_learns_a_square():
    torch.manual_seed(0)
    net = SegNet(2, 1, 2, channels=(8, 16))
    y = torch.zeros(4, 16, 16, dtype=torch.long)
    y[:, 4:10, 5:12] = 1
    x = y[:, None].float() * 2 + 0.3 * torch.randn(4, 1, 16, 16)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    pred = net.eval()(x).argmax(1)
    dice = 2 * ((pred == 1) & (y == 1)).sum() / ((pred == 1).sum() + (y == 1).sum())
    assert dice > 0.9


@pytest.mark.parametrize("name", SEGMENTATION_NETWORKS)
def test_registry_builds_every_network(name):
    dims = 3 if name == "unet3d" else 2
    net = build_network(name, spatial_dims=dims, in_channels=1, out_channels=2, channels=(4, 8, 16),
                        strides=(2, 2)).eval()
    size = 32 if name == "vnet" else 16  # V-Net has a fixed depth of 4 poolings
    with torch.no_grad():
        assert net(torch.randn((1, 1) + (size,) * dims)).shape == (1, 2) + (size,) * dims
