"""One pair registered: by the network (optionally refined), or by SimpleITK; the result on the fixed grid.

:func:`register_arrays` is what every entry point runs (the API, ``predict``, ``evaluate``, the service):

* ``"network"``: both images normalised (plan) and resampled to the working grid
  (:mod:`.preprocess`), the optimised affine stage (:mod:`.affine`, ``prealign``), the network's field on the
  affinely aligned pair composed with it, ``refine`` steps of instance optimisation on the whole field
  (:func:`~.classical.refine`, the plan's similarity; ``refine_smoothness`` weighted ``refine_weight``) on the
  working grid (on the fixed grid when it is small enough) and ``refine_fine_steps`` more on a grid
  ``refine_fine_factor`` times finer (:func:`fine_shape`; local NCC there over ``refine_fine_kernel`` voxels),
  then the field resized to the fixed grid (:func:`~.transforms.resize_field`);
* ``"bspline"`` / ``"affine"`` / ``"demons"`` (``"classical"``: the plan's ``classical.method``): SimpleITK
  on the fixed grid (:mod:`.classical`): affine (Mattes MI for a multi-modal pair or plan, else
  correlation), then a cubic B-spline, or demons from the affine field (one modality only).

The result's field is the voxel DDF ``(ndim, *S)`` of :mod:`.transforms` (``warped(x) = moving(x + u(x))``);
the moving image is warped linearly (border values outside), its labels by nearest neighbour (0 outside).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medlearn.errors import InputError
from medlearn.tasks.register.plan import CLASSICAL, METHODS, RegistrationPlan
from medlearn.tasks.register.preprocess import normalise, prealign_field, resample_image
from medlearn.tasks.register.transforms import compose_fields, resize_field, warp, warp_labels

__all__ = ["RegistrationResult", "register_arrays", "resolve_method"]


@dataclass
class RegistrationResult:
    """``ddf (ndim, *S)`` voxels on the fixed grid; ``warped (1, *S)`` the moving image on it (its own
    intensities); ``warped_label (1, *S)`` when moving labels were given; ``seconds`` of registration
    (reading and writing excluded)."""

    ddf: np.ndarray
    warped: np.ndarray
    seconds: float
    method: str
    warped_label: np.ndarray | None = None
    refine_steps: int = 0
    info: dict[str, Any] = field(default_factory=dict)


def resolve_method(plan: RegistrationPlan, method: str | None) -> str:
    """The method a request runs: ``network`` or a SimpleITK one (``classical`` -> ``classical.method``)."""
    method = method or plan.inference.method
    if method not in METHODS:
        raise InputError("--method", f"unknown method '{method}'", f"choose one of {', '.join(METHODS)}")
    if method == "network" and not plan.learned:
        method = CLASSICAL  # a classical run has no network
    if method == CLASSICAL:
        method = plan.classical.method
    if method == "demons" and not plan.data.same_modality:
        raise InputError("--method", "demons assumes one modality; the model's pairs are multi-modal",
                         "use --method bspline or affine (Mattes mutual information)")
    return method


def _network_field(net: torch.nn.Module, plan: RegistrationPlan, fixed: np.ndarray, moving: np.ndarray,
                   refine_steps: int) -> torch.Tensor:
    from medlearn.tasks.register.classical import refine

    shape = tuple(fixed.shape[1:])
    f, m = normalise(fixed, plan.data.normalization), normalise(moving, plan.data.normalization)
    fw = resample_image(f, plan.data.working_shape)[None]
    mw = resample_image(m, plan.data.working_shape)[None]
    with torch.no_grad():
        if plan.prealigned:  # the optimised affine stage, then the network on the aligned pair
            u_affine = prealign_field(plan, fw, mw)
            u = compose_fields(u_affine, net(warp(mw, u_affine), fw))
        else:
            u = net(mw, fw)
    if refine_steps > 0:
        loss, inf = plan.loss, plan.inference
        kwargs = {"kernel_size": loss.ncc_kernel} if loss.similarity == "ncc" else (
            {"num_bins": loss.mi_bins} if loss.similarity == "mi" else {})
        weight = loss.smoothness_weight if inf.refine_weight is None else inf.refine_weight
        on_fixed_grid = int(np.prod(shape)) <= inf.refine_full_max_voxels
        if on_fixed_grid:  # on the fixed grid itself: full-resolution detail
            u, fw, mw = resize_field(u, shape), torch.as_tensor(f)[None], torch.as_tensor(m)[None]
        smoothness = inf.refine_smoothness or loss.smoothness
        common = {"similarity": loss.similarity, "smoothness": smoothness, "weight": weight,
                  "grid_spacing": inf.refine_grid, **kwargs}
        u = refine(u, fw, mw, steps=refine_steps, lr=inf.refine_lr, **common)
        fine = fine_shape(plan.data.working_shape, shape, inf.refine_fine_factor)
        if inf.refine_fine_steps > 0 and not on_fixed_grid and fine != tuple(plan.data.working_shape):
            # the image detail the working grid averaged away; lr stays the same distance in millimetres
            if loss.similarity == "ncc" and inf.refine_fine_kernel is not None:  # a window of finer voxels
                common["kernel_size"] = inf.refine_fine_kernel
            u = refine(resize_field(u, fine), resample_image(f, fine)[None], resample_image(m, fine)[None],
                       steps=inf.refine_fine_steps, lr=inf.refine_lr * inf.refine_fine_factor, **common)
    return resize_field(u, shape)[0]


def fine_shape(working: Sequence[int], fixed: Sequence[int], factor: int) -> tuple[int, ...]:
    """The grid ``factor`` times finer than ``working`` on the same corners (``align_corners`` geometry:
    ``(w - 1) * factor + 1`` voxels per axis), at most the fixed grid's."""
    return tuple(min((int(w) - 1) * int(factor) + 1, int(n)) for w, n in zip(working, fixed, strict=True))


def _classical_field(plan: RegistrationPlan, method: str, fixed: np.ndarray, moving: np.ndarray,
                     spacing: tuple[float, ...] | None, multimodal: bool) -> tuple[np.ndarray, dict[str, Any]]:
    from medlearn.tasks.register.classical import affine_register, demons_register

    c = plan.classical
    f, m = normalise(fixed, plan.data.normalization), normalise(moving, plan.data.normalization)
    if method == "demons" and multimodal:
        raise InputError("--method", "demons assumes one modality; this pair is multi-modal",
                         "use --method bspline or affine (Mattes mutual information)")
    mono = plan.data.same_modality and not multimodal and plan.loss.similarity != "mi"
    metric = c.metric if c.metric != "auto" else ("correlation" if mono else "mattes")
    mesh = c.mesh_size if method == "bspline" else None
    affine = affine_register(f, m, metric=metric, spacing=spacing, iterations=c.iterations, bspline_mesh=mesh,
                             bspline_iterations=c.bspline_iterations, sampling=c.sampling)
    info = {"metric": metric, **affine.info}
    if method != "demons":
        return affine.ddf, info
    demons = demons_register(f, m, iterations=c.demons_iterations, sigma=c.demons_sigma, spacing=spacing,
                             initial_ddf=affine.ddf)
    return demons.ddf, {**info, **demons.info}


def register_arrays(plan: RegistrationPlan, net: torch.nn.Module | None, fixed: np.ndarray, moving: np.ndarray, *,
                    moving_label: np.ndarray | None = None, spacing: tuple[float, ...] | None = None,
                    method: str | None = None, refine_steps: int | None = None,
                    multimodal: bool = False) -> RegistrationResult:
    """Register ``moving`` onto ``fixed`` (``(C, *S)`` arrays on one grid, raw intensities).

    ``spacing``: mm per axis (SimpleITK's physical units; the network works in voxels). ``refine_steps``
    (None: the plan's ``inference.refine_steps``) applies to the network only. ``multimodal``: the pair's
    stated modalities differ (SimpleITK then uses Mattes MI).
    """
    method = resolve_method(plan, method)
    fixed = np.asarray(fixed, np.float32)
    moving = np.asarray(moving, np.float32)
    fixed = fixed[None] if fixed.ndim == plan.ndim else fixed
    moving = moving[None] if moving.ndim == plan.ndim else moving
    if fixed.ndim != plan.ndim + 1 or moving.ndim != plan.ndim + 1:
        raise InputError("image", f"the model registers {plan.ndim}D images; got arrays of shape {fixed.shape} and "
                         f"{moving.shape}", "give (C, X, Y[, Z]) arrays on one grid")
    if fixed.shape[1:] != moving.shape[1:]:
        raise InputError("moving image", f"shape {moving.shape[1:]} differs from the fixed image's {fixed.shape[1:]}",
                         "put both on one grid (files are resampled onto the fixed grid when read)")
    steps = plan.inference.refine_steps if refine_steps is None else int(refine_steps)
    if steps < 0:
        raise InputError("--refine", f"must be >= 0, got {steps}")
    started = time.perf_counter()
    info: dict[str, Any] = {}
    if method == "network":
        assert net is not None
        ddf = _network_field(net, plan, fixed, moving, steps)
    else:
        steps = 0
        array, info = _classical_field(plan, method, fixed, moving, spacing, multimodal)
        ddf = torch.as_tensor(array)
    moving_t = torch.as_tensor(moving)[None]
    warped = warp(moving_t, ddf[None].float())[0].numpy()
    seconds = time.perf_counter() - started
    warped_label = None
    if moving_label is not None:
        lab = torch.as_tensor(np.asarray(moving_label).astype(np.int64)).reshape(1, 1, *fixed.shape[1:])
        warped_label = warp_labels(lab, ddf[None].float())[0].numpy().astype(np.asarray(moving_label).dtype)
    return RegistrationResult(ddf=ddf.numpy().astype(np.float32), warped=warped.astype(np.float32), seconds=seconds,
                              method=method, warped_label=warped_label, refine_steps=steps, info=info)

