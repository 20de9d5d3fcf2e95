"""Classical SimpleITK registration and instance optimisation recover known transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.tasks.register.classical import affine_register, demons_register, refine
from medlearn.tasks.register.nets import coarse_to_fine
from medlearn.tasks.register.transforms import warp
from tests.tasks.register.conftest import shifted, smooth_image, translation_tre

T2 = np.array([2.3, -1.6])


@pytest.mark.parametrize("metric", ["correlation", "mattes"])
def test_classical_affine_recovers_a_translation(image2d, metric):
    moving = shifted(image2d, T2)
    result = affine_register(image2d, moving, metric=metric, shrink=(2, 1), smoothing=(1.0, 0.0))
    assert translation_tre(result.ddf, T2) < 0.5
    assert np.allclose(result.matrix[:2, 2], T2, atol=0.5) and np.allclose(result.matrix[:2, :2], np.eye(2), atol=0.05)
    assert result.ddf.shape == (2, 32, 32) and result.seconds > 0


def test_classical_affine_3d_with_spacing_and_bspline(image3d):
    t = np.array([1.5, -1.0, 0.5])
    moving = shifted(image3d, t)
    result = affine_register(image3d, moving, metric="correlation", spacing=(2.0, 1.0, 1.0), shrink=(1,),
                             smoothing=(0.0,))
    assert translation_tre(result.ddf, t, margin=4) < 0.5  # voxel units whatever the spacing
    with_bspline = affine_register(image3d, moving, metric="correlation", shrink=(1,), smoothing=(0.0,),
                                   bspline_mesh=2, bspline_iterations=10)
    assert translation_tre(with_bspline.ddf, t, margin=4) < 0.6 and "bspline_iterations" in with_bspline.info


def test_demons_improves_a_smooth_deformation(image2d):
    from scipy import ndimage

    rng = np.random.default_rng(0)
    u = np.stack([ndimage.gaussian_filter(rng.standard_normal((32, 32)), 5) for _ in range(2)])
    u = (u / np.abs(u).max() * 1.5).astype(np.float32)
    # fixed(x) = moving(x + u(x)): make the fixed image by warping the moving one
    moving = image2d
    fixed = warp(torch.tensor(moving)[None, None], torch.tensor(u)[None]).numpy()[0, 0]
    for diffeomorphic in (False, True):
        result = demons_register(fixed, moving, iterations=100, sigma=1.0, diffeomorphic=diffeomorphic)
        before = float(np.sqrt((u[:, 4:-4, 4:-4] ** 2).sum(0)).mean())
        after = float(np.sqrt(((result.ddf - u)[:, 4:-4, 4:-4] ** 2).sum(0)).mean())
        assert after < 0.6 * before


def test_refine_recovers_a_translation_from_zero(image2d):
    moving = shifted(image2d, T2)
    out = refine(np.zeros((2, 32, 32), np.float32), image2d, moving, steps=200, lr=0.1, similarity="mse",
                 weight=0.1, grid_spacing=4)
    assert isinstance(out, np.ndarray) and out.shape == (2, 32, 32)
    assert translation_tre(out, T2) < 0.3
    start = torch.zeros(1, 2, 32, 32)  # a network's field: torch in, torch out, refined further
    start[:, 0] = 2.0
    refined = refine(start, image2d, moving, steps=50, similarity="ncc", weight=0.5)
    assert isinstance(refined, torch.Tensor) and refined.shape == start.shape
    assert translation_tre(refined[0].numpy(), T2) < translation_tre(start[0].numpy(), T2)


def test_coarse_to_fine_refinement_handles_a_large_shift():
    image = smooth_image((48, 48), seed=3, sigma=3.0)
    t = np.array([5.0, -4.0])
    moving = shifted(image, t)

    def level(f, m, init):
        return refine(init, f, m, steps=60, lr=0.2, similarity="mse", weight=0.05, grid_spacing=4)

    fx, mv = torch.tensor(image)[None, None], torch.tensor(moving)[None, None]
    ddf = coarse_to_fine(level, fx, mv, factors=(4, 2, 1))
    assert ddf.shape == (1, 2, 48, 48) and translation_tre(ddf[0].numpy(), t, margin=10) < 1.0
