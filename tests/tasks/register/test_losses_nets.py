"""Losses by name and the registration networks: shapes, identity at start, coarse-to-fine helpers."""

from __future__ import annotations

import pytest
import torch

from medlearn.errors import InputError
from medlearn.tasks.register.losses import RegistrationLoss, one_hot, similarity_loss, smoothness_loss
from medlearn.tasks.register.nets import (
    REGISTRATION_NETWORKS,
    build_registration_network,
    image_pyramid,
    pyramid_factor,
    required_divisor,
)
from medlearn.tasks.register.transforms import warp
from tests.tasks.register.conftest import smooth_image


def test_similarities_prefer_aligned_images():
    a = torch.tensor(smooth_image((32, 32), 0))[None, None]
    b = torch.roll(a, 3, dims=2)
    contrast = 1.0 - a  # another "modality": inverted intensities
    for name in ("mse", "ncc", "mi"):
        loss = similarity_loss(name, 2)
        assert loss(a, a) < loss(b, a), name
    mi = similarity_loss("mi", 2)
    assert mi(contrast, a) < mi(torch.roll(contrast, 3, dims=2), a)  # MI handles inverted contrast
    assert similarity_loss("mse", 2)(contrast, a) > similarity_loss("mse", 2)(b, a)  # MSE does not
    assert float(similarity_loss("ncc", 2)(a, a)) == pytest.approx(-1.0, abs=1e-3)
    with pytest.raises(InputError, match="unknown similarity loss 'ssd'"):
        similarity_loss("ssd", 2)
    with pytest.raises(InputError, match="unknown smoothness loss"):
        smoothness_loss("tv")


def test_smoothness_and_dice_terms():
    zero = torch.zeros(1, 2, 16, 16)
    rough = torch.randn(1, 2, 16, 16)
    for name in ("diffusion", "bending"):
        assert float(smoothness_loss(name)(zero)) == 0.0 and float(smoothness_loss(name)(rough)) > 0
    labels = torch.zeros(1, 1, 16, 16, dtype=torch.int64)
    labels[..., 4:10, 4:10] = 1
    oh = one_hot(labels, 2)
    assert oh.shape == (1, 2, 16, 16)
    loss = RegistrationLoss(2, "mse", "diffusion", smoothness_weight=0.5, dice_weight=1.0)
    total, parts = loss(oh[:, 1:], oh[:, 1:], zero, oh, oh)
    assert float(total) == pytest.approx(0.0, abs=1e-4) and set(parts) == {"similarity", "smoothness", "dice_loss"}
    total2, _ = loss(oh[:, 1:], oh[:, 1:], rough, torch.roll(oh, 4, dims=2), oh)
    assert total2 > total


@pytest.mark.parametrize("ndim", [2, 3])
def test_every_network_starts_near_identity(ndim):
    shape = (16,) * ndim
    moving, fixed = torch.rand(2, 1, *shape), torch.rand(2, 1, *shape)
    for name in REGISTRATION_NETWORKS:
        options = {"image_size": shape} if name == "globalnet" else {}
        channels = [8, 16, 16, 16] if name in ("voxelmorph", "diffeomorphic", "affine+voxelmorph") else [8, 16]
        net = build_registration_network(name, ndim, channels, **options)
        ddf = net(moving, fixed)
        assert ddf.shape == (2, ndim, *shape), name
        assert float(ddf.abs().max()) < 1e-3, name
        assert 16 % required_divisor(name, channels) == 0
        ddf.sum().backward()  # differentiable end to end
    with pytest.raises(InputError, match="unknown registration network 'morph'"):
        build_registration_network("morph", 2)
    with pytest.raises(InputError, match="globalnet needs image_size"):
        build_registration_network("globalnet", 2)


def test_affine_net_output_is_an_affine_field():
    from medlearn.tasks.register.transforms import ddf_to_affine

    net = build_registration_network("affine", 2, [8, 16])
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([0.0, 0.0, 0.2, 0.0, 0.0, -0.1]))  # translation in half-image units
    ddf = net(torch.rand(1, 1, 21, 31), torch.rand(1, 1, 21, 31))
    m = ddf_to_affine(ddf.detach())[0]
    assert torch.allclose(m[:2, 2], torch.tensor([0.2 * 10, -0.1 * 15]), atol=1e-4)
    moved = warp(torch.rand(1, 1, 21, 31), ddf)
    assert moved.shape == (1, 1, 21, 31)


def test_pyramid_helpers():
    img = torch.rand(1, 1, 32, 32)
    assert [p.shape[-1] for p in image_pyramid(img)] == [8, 16, 32]
    assert [pyramid_factor(p, (4, 2, 1)) for p in (0.0, 0.3, 0.5, 0.7, 1.0)] == [4, 4, 2, 1, 1]
    assert pyramid_factor(0.2, [1]) == 1


@pytest.mark.parametrize("name", ["mse", "ncc", "mi"])
def test_a_similarity_bound_to_one_fixed_image_scores_as_the_loss_does(name):
    gen = torch.Generator().manual_seed(1)
    fixed = torch.rand(1, 1, 24, 20, generator=gen) * 5
    moving = (fixed.roll(2, dims=3) + 0.3 * torch.rand(1, 1, 24, 20, generator=gen)).requires_grad_()
    loss = similarity_loss(name, 2)
    bound, direct = loss.for_fixed(fixed)(moving), loss(moving, fixed)
    (g_bound,), (g_direct,) = torch.autograd.grad(bound, moving), torch.autograd.grad(direct, moving)
    assert float(bound) == pytest.approx(float(direct), rel=1e-6)
    assert torch.allclose(g_bound, g_direct, rtol=1e-5, atol=1e-8)


def test_local_ncc_matches_monai_on_images_with_background():
    """Same value and gradient as MONAI's LNCC (the reference), where a zero background makes box
    variances vanish (the clamp) and rounding would show; for_fixed gives the same as forward."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from medlearn.tasks.register.losses import LocalNCCLoss, window_sums

    gen = torch.Generator().manual_seed(0)
    for ndim, shape, kernel in ((2, (40, 36), 7), (3, (20, 18, 22), 5), (3, (16, 16, 16), 9)):
        fixed = torch.rand(2, 1, *shape, generator=gen) * 3 + 1
        fixed[..., :5, :] = 0  # a background slab
        moving = (fixed.roll(2, dims=2) + 0.2 * torch.rand(2, 1, *shape, generator=gen)).requires_grad_()
        ours, ref = LocalNCCLoss(ndim, kernel), LocalNormalizedCrossCorrelationLoss(spatial_dims=ndim,
                                                                                    kernel_size=kernel)
        expected = ref(moving, fixed)
        (grad_ref,) = torch.autograd.grad(expected, moving)
        for value in (ours(moving, fixed), ours.for_fixed(fixed)(moving)):
            (grad,) = torch.autograd.grad(value, moving)
            assert float(value) == pytest.approx(float(expected), rel=1e-5)
            assert float((grad - grad_ref).norm() / grad_ref.norm()) < 1e-4
    x = torch.rand(1, 2, 6, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: window_sums(t, 3), (x,))  # the self-adjoint backward
    ones = torch.ones(1, 1, 5, 5)
    assert window_sums(ones, 3)[0, 0, 2, 2] == 9 and window_sums(ones, 3)[0, 0, 0, 0] == 4  # zeros outside
    with pytest.raises(ValueError, match="odd"):
        LocalNCCLoss(2, 4)


@pytest.mark.parametrize("name", ["DiffusionLoss", "BendingEnergyLoss"])
@pytest.mark.parametrize("shape", [(2, 2, 9, 11), (1, 3, 7, 8, 9)])
def test_smoothness_value_and_gradient_are_monais(name, shape):
    import warnings

    import monai.losses

    from medlearn.tasks.register import losses

    x = torch.randn(shape, dtype=torch.float64)
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = getattr(monai.losses, name)()(ref)
    value = getattr(losses, name)()(ours)
    (3 * value).backward()
    (3 * expected).backward()
    assert torch.allclose(value, expected) and torch.allclose(ours.grad, ref.grad)
    assert torch.autograd.gradcheck(getattr(losses, name)(), (x[:1, :, :5, :4].clone().requires_grad_(),))
    with pytest.raises(ValueError):
        getattr(losses, name)()(torch.zeros(1, 2, 2, 9))
