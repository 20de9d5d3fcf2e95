import numpy as np
import pytest
import torch
from monai.networks.nets import ResNet
from torch import nn

from medlearn.explain import explain, find_target_layer, grad_cam, occlusion_sensitivity, overlay, select_slice


class TwoRegionNet(nn.Module):
    """Logit 0 = mean activation inside region A, logit 1 = inside region B.

    A fixed per-channel mask is applied before the last conv, so only region A can move logit 0 and
    only region B logit 1: Grad-CAM and occlusion of class 0 must peak in A, of class 1 in B.
    """

    def __init__(self, spatial_dims: int, size: int = 16) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.conv1 = conv(1, 2, 3, padding=1, bias=False)
        self.conv2 = conv(2, 2, 3, padding=1, bias=False, groups=2)
        self.act = nn.ReLU(inplace=True)
        for c in (self.conv1, self.conv2):
            nn.init.constant_(c.weight, 1.0 / 3**spatial_dims)
        mask = torch.zeros((1, 2) + (size,) * spatial_dims)
        mask[(0, 0) + (slice(2, 6),) * spatial_dims] = 1  # region A near the origin corner
        mask[(0, 1) + (slice(10, 14),) * spatial_dims] = 1  # region B near the opposite corner
        self.register_buffer("mask", mask)

    def forward(self, x):
        h = self.act(self.conv1(x)) * self.mask
        h = self.act(self.conv2(h))
        return h.flatten(2).mean(2) * 8.0


def _two_blob_image(spatial_dims: int, size: int = 16) -> torch.Tensor:
    x = torch.zeros((2, 1) + (size,) * spatial_dims)
    x[(slice(None), 0) + (slice(2, 6),) * spatial_dims] = 1.0
    x[(slice(None), 0) + (slice(10, 14),) * spatial_dims] = 1.0
    return x


def _peak(m: np.ndarray) -> tuple[int, ...]:
    return np.unravel_index(np.argmax(m), m.shape)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gradcam_and_occlusion_find_the_region_of_each_class(spatial_dims):
    net = TwoRegionNet(spatial_dims, size=16).eval()
    x = _two_blob_image(spatial_dims, 16)
    if spatial_dims == 3:
        x = x[:1]
    for cls, lo, hi in [(0, 1, 7), (1, 9, 15)]:
        cam = grad_cam(net, x, target_layer="conv2", class_index=cls)
        assert cam.shape == (x.shape[0],) + (16,) * spatial_dims
        assert cam.min() >= 0 and cam.max() <= 1
        assert all(lo <= p <= hi for p in _peak(cam[0])), (cls, _peak(cam[0]))
        kw = {"mask_size": 4, "overlap": 0.5} if spatial_dims == 2 else {"mask_size": 4, "overlap": 0.0}
        occ = occlusion_sensitivity(net, x, class_index=cls, **kw)
        assert occ.shape == cam.shape and occ.min() >= 0 and occ.max() == pytest.approx(1.0)
        assert all(lo - 1 <= p <= hi + 1 for p in _peak(occ[0])), (cls, _peak(occ[0]))
        other = (slice(None),) + ((slice(10, 14),) if cls == 0 else (slice(2, 6),)) * spatial_dims
        assert occ[other].max() < 0.2 and cam[other].max() < 0.2


def test_auto_target_layer_skips_1x1_outputs_and_model_is_left_untouched():
    torch.manual_seed(0)
    net = ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 8], spatial_dims=2, n_input_channels=1, num_classes=3)
    net.train()
    x = torch.randn(3, 1, 28, 28)
    # a gradient left by the caller must survive, hooks must be gone, train mode restored
    net(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    layer = find_target_layer(net.eval(), x)
    net.train()
    assert layer == "layer4"  # the last block (2x2 here), not its shortcut conv
    inplace_before = {n: m.inplace for n, m in net.named_modules() if hasattr(m, "inplace")}
    cam = grad_cam(net, x)
    assert cam.shape == (3, 28, 28) and cam.dtype == np.float32 and np.isfinite(cam).all()
    assert cam.max(axis=(1, 2)).min() == pytest.approx(1.0)  # every map has spatial structure
    assert net.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())
    assert {n: m.inplace for n, m in net.named_modules() if hasattr(m, "inplace")} == inplace_before
    for n, p in net.named_parameters():
        assert p.requires_grad and torch.equal(p.grad, grads[n])


def test_3d_resnet_shapes_and_no_grad_context():
    net = ResNet("basic", [1, 1, 1, 1], [2, 4, 4, 4], spatial_dims=3, n_input_channels=1, num_classes=2).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():  # explanations must work even when the caller disabled autograd
        cam = grad_cam(net, x)
    assert cam.shape == (2, 16, 16, 16) and 0 <= cam.min() and cam.max() <= 1
    occ = occlusion_sensitivity(net, x[:1], mask_size=8, overlap=0.0)
    assert occ.shape == (1, 16, 16, 16)


def test_mlp_falls_back_to_gradient_x_input():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        mlp[1].weight.zero_()
        mlp[1].weight[0, 9] = 1.0  # logit 0 looks only at pixel (1, 1)
    x = torch.ones(1, 1, 8, 8)
    cam = grad_cam(mlp, x, class_index=0)
    assert cam.shape == (1, 8, 8) and cam[0, 1, 1] == 1.0 and cam.sum() == 1.0
    np.testing.assert_array_equal(explain(mlp, x, "saliency", class_index=0), cam)
    with pytest.raises(ValueError, match="unknown"):
        explain(mlp, x, "lime")


def test_bad_target_layer_message():
    net = TwoRegionNet(2)
    with pytest.raises(ValueError, match="not a module"):
        grad_cam(net, _two_blob_image(2), target_layer="nope")


def test_overlay_and_select_slice():
    img = np.linspace(0, 1, 16).reshape(4, 4)
    heat = np.zeros((2, 2))
    heat[0, 0] = 1
    out = overlay(img, heat, alpha=0.5)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    # full overlay of the top-left (hot, red in jet) vs bottom-right (cold, blue) corner
    full = overlay(np.zeros((4, 4)), np.array([[1.0, 0.0], [0.0, 0.0]]), alpha=1.0)
    assert full[0, 0, 0] > 100 and full[0, 0, 2] < 50 and full[3, 3, 2] > 100
    np.testing.assert_array_equal(overlay(img, heat, alpha=0.0)[..., 0], np.round(img * 255).astype(np.uint8))
    vol = np.random.default_rng(0).uniform(size=(5, 6, 7))
    h = np.zeros((5, 6, 7))
    h[:, :, 4] = 1
    s_img, s_heat, k = select_slice(vol, h)
    assert k == 4 and s_img.shape == (5, 6) and s_heat.max() == 1
