"""One pair through the network path: working-grid refinement, then the finer refinement level."""

from __future__ import annotations

import numpy as np
import torch

from medlearn.tasks.register.inference import fine_shape, register_arrays
from medlearn.tasks.register.plan import RegistrationFingerprint, make_plan
from tests.tasks.register.conftest import shifted, smooth_image, translation_tre


class ZeroField(torch.nn.Module):
    """A network that predicts no displacement: what the pair gets is the refinement's alone."""

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return torch.zeros(moving.shape[0], moving.ndim - 2, *moving.shape[2:])


def test_fine_shape_halves_the_spacing_on_the_same_corners_and_stops_at_the_fixed_grid():
    assert fine_shape((40, 48, 56), (160, 192, 224), 2) == (79, 95, 111)
    assert fine_shape((10, 10, 10), (15, 30, 30), 2) == (15, 19, 19)
    assert fine_shape((8, 8), (8, 8), 2) == (8, 8)


def test_the_3d_plan_refines_on_a_finer_grid_and_2d_on_the_fixed_grid():
    brain = make_plan(RegistrationFingerprint(ndim=3, image_size=(160, 192, 224), spacing=(1.0, 1.0, 1.0)))
    assert brain.inference.refine_fine_steps > 0 and brain.prealign.steps == 30
    slice_ = make_plan(RegistrationFingerprint(ndim=2, image_size=(256, 256), spacing=(1.0, 1.0)))
    assert slice_.inference.refine_fine_steps == 0 and slice_.inference.refine_full_max_voxels > 0


def test_the_finer_level_recovers_what_the_working_grid_averaged_away():
    fixed = smooth_image((33, 33, 33), seed=4, sigma=3.0)  # a 4x coarser working grid averages its detail
    t = np.array([0.8, -0.6, 0.5])  # a fraction of a working voxel
    moving = shifted(fixed, t)
    plan = make_plan(RegistrationFingerprint(ndim=3, image_size=(33, 33, 33), spacing=(1.0, 1.0, 1.0)))
    plan.data.working_shape, plan.prealign.method, plan.loss.ncc_kernel = [9, 9, 9], "none", 5
    errors = {}
    for fine in (0, 30):
        plan.inference.refine_fine_steps = fine
        result = register_arrays(plan, ZeroField(), fixed, moving, refine_steps=30)
        errors[fine] = translation_tre(result.ddf, t, margin=8)
        assert result.ddf.shape == (3, 33, 33, 33)
    assert errors[30] < 0.8 * errors[0], errors
    plan.inference.refine_fine_steps = 30  # --refine 0 (the network alone) turns every refinement level off
    alone = register_arrays(plan, ZeroField(), fixed, moving, refine_steps=0)
    assert np.abs(alone.ddf).max() == 0
