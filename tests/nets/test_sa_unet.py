"""SA-UNet and its blocks: DropBlock and spatial attention."""

from __future__ import annotations

import pytest
import torch

from medlearn.nets import build_network
from medlearn.nets.sa_unet import DropBlock, SAUNet, SpatialAttention


@pytest.mark.parametrize("dims", [2, 3])
def test_sa_unet_shapes(dims):
    net = SAUNet(dims, in_channels=3, out_channels=2, channels=(4, 8, 16), drop_prob=0.1)
    x = torch.randn((2, 3) + (16,) * dims)
    assert net(x).shape == (2, 2) + (16,) * dims


def test_dropblock_drops_whole_blocks_and_keeps_the_mean():
    torch.manual_seed(0)
    block = DropBlock(0.2, block_size=5).train()
    x = torch.ones(8, 4, 64, 64)
    y = block(x)
    dropped = y == 0
    # about the asked fraction is dropped (blocks overlap and are clipped at the border, so a bit less)
    assert 0.12 < float(dropped.float().mean()) < 0.22
    # kept units are scaled up so the expectation is unchanged
    assert float(y.mean()) == pytest.approx(1.0, abs=1e-4)
    # dropped units come in blocks: a dropped interior unit has most of its 8 neighbours dropped too,
    # which element-wise dropout at this rate would not give (expected 0.2 * 8 = 1.6)
    d = dropped[..., 1:-1, 1:-1].float()
    neighbours = sum(dropped[..., 1 + dy: 63 + dy, 1 + dx: 63 + dx].float()
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    assert float((neighbours * d).sum() / d.sum()) > 5.0


def test_dropblock_is_the_identity_in_eval_mode_and_at_zero():
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(DropBlock(0.3).eval()(x), x)
    assert torch.equal(DropBlock(0.0).train()(x), x)
    with pytest.raises(ValueError, match="odd"):
        DropBlock(0.1, block_size=4)
    with pytest.raises(ValueError, match="drop_prob"):
        DropBlock(1.0)


def test_dropblock_caps_the_block_at_the_map_size():
    torch.manual_seed(0)
    # a 3x3 map with a block of 7: still drops some but not all units, and keeps the shape
    y = DropBlock(0.3, block_size=7).train()(torch.ones(64, 8, 3, 3))
    assert y.shape == (64, 8, 3, 3)
    assert 0.0 < float((y == 0).float().mean()) < 1.0


def test_spatial_attention_reweights_positions_not_channels():
    attention = SpatialAttention(2)
    x = torch.rand(1, 4, 8, 8) + 0.1
    weights = attention(x) / x
    # one weight per position, shared by all channels, in (0, 1)
    assert torch.allclose(weights, weights[:, :1].expand_as(weights), atol=1e-6)
    assert float(weights.min()) > 0.0 and float(weights.max()) < 1.0


def test_registry_builds_sa_unet_from_a_plan_topology():
    net = build_network("sa_unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16),
                        strides=(2, 2), dropout=0.18)
    assert [m.drop_prob for m in net.modules() if isinstance(m, DropBlock)][0] == 0.18
    with pytest.raises(ValueError, match="strides"):
        build_network("sa_unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(3,))
