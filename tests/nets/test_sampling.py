"""The slab-split 3D grid_sample: torch's values and gradients, on more than one thread."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medlearn.nets import sampling
from medlearn.nets.sampling import grid_sample


@pytest.mark.parametrize("depth,threads", [(7, 2), (8, 2), (11, 3), (5, 4), (3, 3)])
@pytest.mark.parametrize("mode,padding", [("bilinear", "border"), ("bilinear", "zeros"), ("nearest", "zeros")])
def test_values_and_gradients_match_torch(depth, threads, mode, padding):
    gen = torch.Generator().manual_seed(depth * 10 + threads)
    image = torch.rand(1, 2, 6, 5, 4, generator=gen, requires_grad=True)
    grid = (torch.rand(1, depth, 4, 3, 3, generator=gen) * 2.4 - 1.2).requires_grad_()
    weights = torch.rand(1, 2, depth, 4, 3, generator=gen)
    ref = F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=True)
    out = grid_sample(image, grid, mode=mode, padding=padding, threads=threads)
    assert torch.equal(out, ref)
    ref_grads = torch.autograd.grad((ref * weights).sum(), [image, grid])
    out_grads = torch.autograd.grad((out * weights).sum(), [image, grid])
    torch.testing.assert_close(out_grads[0], ref_grads[0])  # the image's: summed over the slabs
    assert torch.equal(out_grads[1], ref_grads[1])  # each grid point belongs to one slab


def test_runs_the_kernel_as_a_batch_of_slabs(monkeypatch):
    seen = []
    kernel = torch.ops.aten.grid_sampler_3d

    class Spy:
        def __call__(self, image, grid, *rest):
            seen.append((tuple(image.shape), tuple(grid.shape)))
            return kernel(image, grid, *rest)

    monkeypatch.setattr(sampling.torch.ops.aten, "grid_sampler_3d", Spy(), raising=False)
    grid_sample(torch.rand(1, 1, 4, 4, 4), torch.zeros(1, 9, 2, 2, 3), threads=2)
    assert seen == [((2, 1, 4, 4, 4), (2, 5, 2, 2, 3))]  # two slabs of 5 rows, the middle one shared


def test_2d_a_batch_or_one_thread_is_torch_itself():
    image, grid = torch.rand(2, 1, 4, 4, 4), torch.rand(2, 3, 3, 3, 3) * 2 - 1
    assert torch.equal(grid_sample(image, grid, threads=4),
                       F.grid_sample(image, grid, padding_mode="zeros", align_corners=True))
    assert torch.equal(grid_sample(image[:1], grid[:1], threads=1),
                       F.grid_sample(image[:1], grid[:1], padding_mode="zeros", align_corners=True))
    flat, flat_grid = torch.rand(1, 1, 5, 6), torch.rand(1, 4, 3, 2) * 2 - 1
    assert torch.equal(grid_sample(flat, flat_grid, threads=2),
                       F.grid_sample(flat, flat_grid, padding_mode="zeros", align_corners=True))
