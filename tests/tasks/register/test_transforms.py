"""Warping, affine <-> field, B-splines, composition, inversion, integration and Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medlearn.evaluation.registration import folding_percent, jacobian_determinant, log_jacobian_std
from medlearn.tasks.register.transforms import (
    affine_to_ddf,
    bspline_grid_shape,
    bspline_to_ddf,
    centred_affine_to_voxel,
    compose_fields,
    ddf_to_affine,
    integrate_velocity,
    invert_field,
    resize_field,
    warp,
    warp_labels,
)
from tests.tasks.register.conftest import smooth_image


def _smooth_field(shape, seed=0, amplitude=1.5, sigma=3.0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    f = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), sigma) for _ in shape])
    return torch.tensor(f / np.abs(f).max() * amplitude, dtype=torch.float32)[None]


def test_warp_pulls_in_the_documented_direction():
    img = torch.zeros(1, 1, 20, 24)
    img[0, 0, 5:10, 6:12] = 1
    m = np.eye(3)
    m[:2, 2] = [2, -3]  # the fixed voxel x lies at x + (2, -3) in the moving image
    out = warp(img, affine_to_ddf(m, (20, 24)))
    assert torch.allclose(out[0, 0, 3:8, 9:15], torch.ones(5, 6))
    assert out.sum() == pytest.approx(30)
    lab = torch.zeros(1, 1, 20, 24, dtype=torch.int64)
    lab[0, 0, 5:10, 6:12] = 3
    moved = warp_labels(lab, affine_to_ddf(m, (20, 24)))
    assert moved.dtype == torch.int64 and set(moved.unique().tolist()) == {0, 3} and (moved == 3).sum() == 30


@pytest.mark.parametrize("shape", [(20, 24), (10, 12, 14)])
def test_warp_agrees_with_monai_warp(shape):
    """MONAI's Warp is the reference: same values (bilinear, every padding) and gradients, the same labels;
    alternating shapes reuse the right cached grid."""
    import warnings

    from monai.networks.blocks import Warp

    image = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    ddf = (_smooth_field(shape, 1, amplitude=4.0).expand(2, -1, *shape) * torch.tensor([1.0, -1.0])
           .view(2, 1, *[1] * len(shape))).contiguous().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for padding in ("border", "zeros", "reflection"):
            expected = Warp(mode="bilinear", padding_mode=padding)(image, ddf)
            ours = warp(image, ddf, padding=padding)
            assert torch.allclose(ours, expected, atol=1e-5)
            (g_ref,) = torch.autograd.grad(expected.sum(), ddf)
            (g,) = torch.autograd.grad(warp(image, ddf, padding=padding).sum(), ddf)
            assert float((g - g_ref).norm() / g_ref.norm()) < 1e-3
        labels = torch.randint(0, 4, (2, 1, *shape), generator=torch.Generator().manual_seed(1)).float()
        near = Warp(mode="nearest", padding_mode="zeros")(labels, ddf.detach())
        assert float((warp(labels, ddf.detach(), mode="nearest", padding="zeros") != near).float().mean()) < 1e-3
    small = tuple(n // 2 for n in shape)  # another shape in between, then the first again
    assert warp(torch.ones(1, 1, *small), torch.zeros(1, len(shape), *small)).shape[2:] == small
    assert torch.allclose(warp(image, ddf.detach(), padding="zeros"),
                          Warp(mode="bilinear", padding_mode="zeros")(image, ddf.detach()), atol=1e-5)


def test_affine_round_trip_and_centred_rotation():
    rng = np.random.default_rng(0)
    m = np.eye(4)
    m[:3, :3] += rng.normal(0, 0.05, (3, 3))
    m[:3, 3] = rng.normal(0, 2, 3)
    u = affine_to_ddf(m, (8, 9, 10), torch.float64)
    assert np.allclose(ddf_to_affine(u)[0].numpy(), m, atol=1e-8)
    theta = torch.tensor([[[math.cos(0.3), -math.sin(0.3), 0.0], [math.sin(0.3), math.cos(0.3), 0.0]]])
    vox = centred_affine_to_voxel(theta, (21, 31))[0]
    centre = torch.tensor([10.0, 15.0, 1.0])
    assert torch.allclose(vox @ centre, centre[:2], atol=1e-5)  # turns about the image centre
    assert torch.allclose(centred_affine_to_voxel(torch.eye(2, 3)[None], (7, 9))[0], torch.eye(2, 3))


def test_bspline_partition_of_unity_and_support():
    shape, spacing = (20, 24), 4
    grid = bspline_grid_shape(shape, spacing)
    assert grid == (8, 9)
    const = bspline_to_ddf(torch.full((1, 2, *grid), 1.5), shape, spacing)
    assert torch.allclose(const, torch.full_like(const, 1.5), atol=1e-6)
    one = torch.zeros(1, 2, *grid)
    one[0, 0, 3, 3] = 1.0  # control point k sits at voxel (k - 1) * spacing = 8
    dense = bspline_to_ddf(one, shape, spacing)[0, 0]
    assert np.unravel_index(int(dense.argmax()), shape) == (8, 8)
    assert float(dense.max()) == pytest.approx((2 / 3) ** 2, rel=1e-5)
    assert float(dense[8, 8 + 2 * spacing]) == 0.0  # compact support of +-2 spacings
    with pytest.raises(ValueError, match="control grid"):
        bspline_to_ddf(torch.zeros(1, 2, 5, 5), shape, spacing)


def test_compose_and_invert():
    a, b = torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16)
    a[:, 0], b[:, 1] = 1.5, -2.0
    assert torch.allclose(compose_fields(a, b)[:, :, 2:-2, 2:-2], (a + b)[:, :, 2:-2, 2:-2], atol=1e-5)
    img = torch.tensor(smooth_image((32, 32)))[None, None]
    u1, u2 = _smooth_field((32, 32), 1, amplitude=4.0, sigma=4.0), _smooth_field((32, 32), 2, amplitude=4.0, sigma=4.0)
    twice = warp(warp(img, u1), u2)
    err_compose = (twice - warp(img, compose_fields(u1, u2)))[..., 4:-4, 4:-4].abs().mean()
    err_sum = (twice - warp(img, u1 + u2))[..., 4:-4, 4:-4].abs().mean()
    assert err_compose < 0.5 * err_sum  # composing is not adding
    small = _smooth_field((32, 32), 1)
    inv = invert_field(small)
    # the left inverse (the fixed-point iteration solves the right one by construction)
    assert compose_fields(inv, small)[..., 4:-4, 4:-4].abs().max() < 0.05
    assert compose_fields(-small, small)[..., 4:-4, 4:-4].abs().max() > 0.1  # -u is not the inverse


def _det(u: torch.Tensor) -> np.ndarray:
    """The metric's Jacobian determinant ``(*S)`` of one field of a batch ``(1, ndim, *S)``."""
    return jacobian_determinant(u[0].numpy())


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_identity_and_affine(ndim):
    shape = (12,) * ndim
    assert np.allclose(jacobian_determinant(np.zeros((ndim, *shape))), np.ones(shape))
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = np.diag([1.5] + [1.0] * (ndim - 1))
    assert np.allclose(_det(affine_to_ddf(m, shape)), np.full(shape, 1.5), atol=1e-5)
    assert folding_percent(np.ones(shape)) == 0.0
    assert log_jacobian_std(np.ones(shape)) == pytest.approx(0.0, abs=1e-7)


def test_folding_is_counted():
    shape = (16, 16)
    u = torch.zeros(1, 2, *shape)
    u[0, 0, 6:10, :] = torch.linspace(3, -3, 4)[:, None]  # x + u(x) decreases along axis 0: folds
    det = _det(u)
    assert (det <= 0).sum() > 0
    expected = 100.0 * float((det <= 0).mean())
    assert folding_percent(det) == pytest.approx(expected)
    mask = np.zeros(shape, dtype=bool)
    mask[:4] = True
    assert folding_percent(det, mask) == 0.0
    assert log_jacobian_std(det) > 1.0
    u3 = torch.zeros(1, 3, 8, 8, 8)
    u3[0, 2, :, :, 3:5] = torch.tensor([2.0, -2.0])
    assert folding_percent(_det(u3)) > 0


def test_scaling_and_squaring_gives_no_folding():
    v = _smooth_field((32, 32), 3, amplitude=8.0, sigma=3.0)
    assert folding_percent(_det(v)) > 1.0  # the same field used as a displacement folds
    u = integrate_velocity(v, steps=7)
    assert folding_percent(_det(u)) == 0.0
    assert u.abs().max() > 1.0  # and still moves voxels
    v3 = _smooth_field((16, 16, 16), 4, amplitude=4.0, sigma=2.0)
    assert folding_percent(_det(integrate_velocity(v3))) == 0.0


def test_resize_field_keeps_physical_displacement():
    m = np.eye(3)
    m[:2, 2] = [2.0, -1.0]
    coarse = affine_to_ddf(m, (9, 9))
    fine = resize_field(coarse, (17, 17))  # voxels are half as big: 2x the voxel displacement
    assert torch.allclose(fine[0, 0], torch.full((17, 17), 4.0))
    assert torch.allclose(fine[0, 1], torch.full((17, 17), -2.0))
