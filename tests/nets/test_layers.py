import pytest
import torch
from torch import nn

from medlearn.nets.layers import conv_bn_relu


@pytest.mark.parametrize("dims", [2, 3])
def test_conv_bn_relu_shapes_and_order(dims):
    block = conv_bn_relu(dims, 3, 5, 2, after_conv=lambda: nn.Dropout(0.5))
    kinds = [type(m).__name__ for m in block]
    d = f"{dims}d"
    assert kinds == [f"Conv{d}", "Dropout", f"BatchNorm{d}", "ReLU"] * 2
    assert block[4].in_channels == 5
    x = torch.randn(2, 3, *([8] * dims))
    assert block(x).shape == (2, 5, *([8] * dims))


def test_conv_bn_relu_without_extra_layer_keeps_segnet_keys():
    """Saved SegNet weights name layers by position: conv 0, BN 1, ReLU 2, conv 3..."""
    block = conv_bn_relu(2, 1, 4, 2)
    assert [k for k in block.state_dict() if k.endswith("weight")] == ["0.weight", "1.weight", "3.weight", "4.weight"]
