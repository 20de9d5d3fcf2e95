"""Pairs on the working grid: corner-aligned resampling (the geometry the field is resized back with),
label remapping, and the optimised affine stage recovering a known affine."""

from __future__ import annotations

import numpy as np
import torch

from medlearn.tasks.register.affine import optimise_affine
from medlearn.tasks.register.preprocess import normalise, remap_labels, resample_image, resample_labels
from medlearn.tasks.register.transforms import affine_to_ddf, warp
from tests.tasks.register.conftest import smooth_image


def test_resampling_keeps_the_corner_aligned_geometry():
    for spatial, shape in (((221, 257), (112, 128)), ((40, 48, 20), (10, 12, 20))):
        ramp = torch.linspace(0, 1, spatial[0]).view(-1, *[1] * (len(spatial) - 1)).expand(*spatial)
        small = resample_image(ramp[None], shape)[0]
        expected = torch.linspace(0, 1, shape[0])
        inner = small[(slice(1, -1), *[0] * (len(shape) - 1))]
        assert small.shape == shape and torch.allclose(inner, expected[1:-1], atol=1e-5)
    labels = np.zeros((1, 40, 40), np.int32)
    labels[0, :20] = 7
    small = resample_labels(labels, (10, 10))
    assert set(np.unique(small).tolist()) == {0, 7} and small[0, :5].min() == 7 and small[0, 5:].max() == 0
    assert np.array_equal(remap_labels(np.array([0, 7, 3, 9]), [3, 7]), [0, 2, 1, 0])
    x = normalise(np.arange(1000, dtype=np.float32).reshape(1, 10, 100))
    assert x.min() == 0.0 and x.max() == 1.0 and x.shape == (1, 10, 100)


def test_the_affine_stage_recovers_a_rotation_and_shift():
    image = torch.tensor(smooth_image((48, 48), 3, sigma=3.0))[None, None]
    c, a = 23.5, np.radians(8)
    m = np.eye(3)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:2, 2] = [c, c] - m[:2, :2] @ [c, c] + [2.5, -1.5]
    truth = affine_to_ddf(m, (48, 48))
    fixed = warp(image, truth)  # fixed(x) = moving(M x): the affine maps fixed voxels into the moving image
    found = optimise_affine(fixed, image, "mse", levels=(2, 1), steps=150, lr=0.02)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (found - truth)[inner].norm(dim=1).mean() < 0.3 < truth[inner].norm(dim=1).mean()
