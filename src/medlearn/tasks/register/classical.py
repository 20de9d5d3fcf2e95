"""Classical registration (the reference the networks are compared with) and instance optimisation.

SimpleITK does the classical part on 2D/3D numpy arrays in the package convention (``(*S)`` or
``(1, *S)``, NIfTI voxel order, optional voxel ``spacing``); every function returns a
:class:`ClassicalResult` whose ``ddf`` is the dense displacement ``(ndim, *S)`` in voxels in the
convention of the networks (:mod:`.transforms`; a network's output ``[0]``):

* :func:`affine_register`: affine, Mattes mutual information (Mattes et al. 2003, IEEE TMI 22:120;
  multi-modal) or correlation (mono-modal), centred initialisation, regular-step gradient descent
  over a 3-level pyramid; optionally followed by a cubic B-spline free-form deformation
  (Rueckert et al. 1999, IEEE TMI 18:712) optimised with L-BFGS-B;
* :func:`demons_register`: symmetric-forces demons (Thirion 1998, MedIA 2:243; the symmetric
  variant as in Vercauteren et al. 2007, IPMI) or diffeomorphic demons (Vercauteren et al. 2009, NeuroImage 45:S61),
  after histogram matching, optionally from an initial (e.g. affine) field.

:func:`refine` is instance optimisation (written here, torch): a few hundred Adam steps on one pair's
displacement field, starting from a network's (or any) field, minimising similarity + smoothness —
the test-time refinement of Learn2Reg's best methods (e.g. Siebert, Hansen & Heinrich 2021, ConvexAdam;
Heinrich & Hansen 2022). The field can be parameterised on a coarser grid (``grid_spacing``), upsampled
linearly, which propagates the update into flat image regions.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medlearn.tasks.register.losses import similarity_loss, smoothness_loss
from medlearn.tasks.register.transforms import warp

__all__ = ["ClassicalResult", "affine_register", "demons_register", "field_from_transform", "refine", "to_sitk"]


@dataclass
class ClassicalResult:
    """``ddf (ndim, *S)`` float32 voxels (fixed grid); ``matrix`` the affine on voxel indices (fixed voxel
    -> moving voxel, homogeneous, when the result has an affine part); ``transform`` SimpleITK's own."""

    ddf: np.ndarray
    seconds: float
    matrix: np.ndarray | None = None
    transform: Any = None
    metric: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _spatial(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array, dtype=np.float32)
    if a.ndim in (3, 4) and a.shape[0] == 1:
        a = a[0]
    if a.ndim not in (2, 3):
        raise ValueError(f"expected a (*S) or (1, *S) 2D/3D array, got shape {np.asarray(array).shape}")
    return a


def to_sitk(array: np.ndarray, spacing: Sequence[float] | None = None) -> Any:
    """A scalar float32 SimpleITK image of ``(*S)`` (or ``(1, *S)``): sitk's x is array axis 0, origin 0,
    identity direction, ``spacing`` per axis (1 mm when None)."""
    import SimpleITK as sitk

    a = _spatial(array)
    img = sitk.GetImageFromArray(np.ascontiguousarray(a.T))
    img.SetSpacing([float(s) for s in (spacing or [1.0] * a.ndim)])
    return img


def field_from_transform(transform: Any, reference: Any) -> np.ndarray:
    """The voxel DDF ``(ndim, *S)`` of a SimpleITK transform on ``reference``'s grid (made by :func:`to_sitk`)."""
    import SimpleITK as sitk

    conv = sitk.TransformToDisplacementFieldFilter()
    conv.SetReferenceImage(reference)
    conv.SetOutputPixelType(sitk.sitkVectorFloat64)
    disp = conv.Execute(transform)
    return _sitk_field_to_ddf(disp, reference)


def _sitk_field_to_ddf(disp: Any, reference: Any) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(disp)  # (Z, Y, X, ndim) or (Y, X, ndim)
    n = reference.GetDimension()
    arr = np.moveaxis(arr, -1, 0)
    arr = np.transpose(arr, (0, *range(n, 0, -1)))  # (ndim, X, Y[, Z])
    spacing = np.asarray(reference.GetSpacing(), float)
    return (arr / spacing.reshape(n, *([1] * n))).astype(np.float32)


def _affine_matrix(transform: Any, spacing: Sequence[float]) -> np.ndarray:
    """Homogeneous voxel-index matrix of a sitk affine/centred transform (identity direction, origin 0)."""
    n = transform.GetDimension()
    s = np.asarray(spacing, float)
    lin = np.asarray(transform.GetMatrix(), float).reshape(n, n)
    centre = np.asarray(transform.GetCenter(), float)
    trans = np.asarray(transform.GetTranslation(), float)
    offset = trans + centre - lin @ centre  # physical: y = lin x + offset
    m = np.eye(n + 1)
    m[:n, :n] = np.diag(1 / s) @ lin @ np.diag(s)
    m[:n, n] = offset / s
    return m


def affine_register(fixed: np.ndarray, moving: np.ndarray, metric: str = "mattes",
                    spacing: Sequence[float] | None = None, iterations: int = 300,
                    shrink: Sequence[int] = (4, 2, 1), smoothing: Sequence[float] = (2.0, 1.0, 0.0),
                    bspline_mesh: int | Sequence[int] | None = None, bspline_iterations: int = 100,
                    bins: int = 50, sampling: float | None = None, seed: int = 0) -> ClassicalResult:
    """Affine (then optionally B-spline) registration of ``moving`` onto ``fixed`` with SimpleITK.

    ``metric``: ``"mattes"`` (Mattes mutual information, ``bins``; any modality pair) or
    ``"correlation"`` (normalised correlation; one modality). ``shrink``/``smoothing``: the pyramid
    (factors and Gaussian sigmas in voxels). ``bspline_mesh``: control-point mesh cells per axis for a
    B-spline stage on top of the affine (None: affine only). ``sampling``: fraction of voxels the
    metric samples (None: all), seeded.
    """
    import SimpleITK as sitk

    start = time.perf_counter()
    f = to_sitk(fixed, spacing)
    m = to_sitk(moving, spacing)
    ndim = f.GetDimension()

    def method() -> Any:
        reg = sitk.ImageRegistrationMethod()
        if metric == "mattes":
            reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
        elif metric == "correlation":
            reg.SetMetricAsCorrelation()
        else:
            raise ValueError(f"metric must be 'mattes' or 'correlation', got {metric!r}")
        if sampling is not None:
            reg.SetMetricSamplingStrategy(reg.RANDOM)
            reg.SetMetricSamplingPercentage(float(sampling), seed)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetShrinkFactorsPerLevel(list(shrink))
        reg.SetSmoothingSigmasPerLevel(list(smoothing))
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        return reg

    init = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(ndim),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = method()
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(init, inPlace=False)
    out = reg.Execute(f, m)  # a CompositeTransform holding the optimised affine
    affine = sitk.AffineTransform(out.GetNthTransform(0) if isinstance(out, sitk.CompositeTransform) else out)
    value = float(reg.GetMetricValue())
    matrix = _affine_matrix(affine, f.GetSpacing())
    transform: Any = affine
    info: dict[str, Any] = {"affine_iterations": int(reg.GetOptimizerIteration()),
                            "stop": reg.GetOptimizerStopConditionDescription()}
    if bspline_mesh is not None:
        mesh = [int(bspline_mesh)] * ndim if isinstance(bspline_mesh, int) else [int(v) for v in bspline_mesh]
        bspline = sitk.BSplineTransformInitializer(f, mesh, order=3)
        reg2 = method()
        reg2.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=bspline_iterations,
                                  maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=1000,
                                  costFunctionConvergenceFactor=1e7)
        reg2.SetMovingInitialTransform(affine)
        reg2.SetInitialTransform(bspline, inPlace=True)
        reg2.Execute(f, m)
        value = float(reg2.GetMetricValue())
        transform = sitk.CompositeTransform([affine, bspline])  # applied last-added first: bspline, then affine
        info["bspline_iterations"] = int(reg2.GetOptimizerIteration())
    ddf = field_from_transform(transform, f)
    return ClassicalResult(ddf=ddf, seconds=time.perf_counter() - start, matrix=matrix, transform=transform,
                           metric=value, info=info)


def demons_register(fixed: np.ndarray, moving: np.ndarray, iterations: int = 100, sigma: float = 1.5,
                    diffeomorphic: bool = False, spacing: Sequence[float] | None = None,
                    initial_ddf: np.ndarray | None = None, histogram_match: bool = True) -> ClassicalResult:
    """Demons registration (mono-modal): symmetric forces, or diffeomorphic with ``diffeomorphic=True``.

    ``sigma``: Gaussian regularisation of the field (voxels, SimpleITK's "standard deviations");
    ``initial_ddf``: voxel DDF ``(ndim, *S)`` to start from (e.g. :func:`affine_register`'s).
    """
    import SimpleITK as sitk

    start = time.perf_counter()
    f = to_sitk(fixed, spacing)
    m = to_sitk(moving, spacing)
    if histogram_match:
        m = sitk.HistogramMatching(m, f, numberOfHistogramLevels=256, numberOfMatchPoints=15,
                                   thresholdAtMeanIntensity=True)
    if diffeomorphic:
        flt = sitk.DiffeomorphicDemonsRegistrationFilter()
    else:
        flt = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    flt.SetNumberOfIterations(int(iterations))
    flt.SetStandardDeviations(float(sigma))
    flt.SmoothDisplacementFieldOn()
    if initial_ddf is not None:
        n = f.GetDimension()
        sp = np.asarray(f.GetSpacing(), float).reshape(n, *([1] * n))
        phys = np.asarray(initial_ddf, np.float64) * sp
        arr = np.transpose(phys, (0, *range(n, 0, -1)))  # (ndim, Z, Y, X)
        init = sitk.GetImageFromArray(np.moveaxis(arr, 0, -1), isVector=True)
        init.CopyInformation(f)
        disp = flt.Execute(f, m, init)
    else:
        disp = flt.Execute(f, m)
    ddf = _sitk_field_to_ddf(disp, f)
    return ClassicalResult(ddf=ddf, seconds=time.perf_counter() - start, metric=float(flt.GetMetric()),
                           info={"iterations": int(flt.GetElapsedIterations())})


def refine(ddf: np.ndarray | torch.Tensor, fixed: np.ndarray | torch.Tensor, moving: np.ndarray | torch.Tensor,
           steps: int = 100, lr: float = 0.1, similarity: str = "ncc", smoothness: str = "diffusion",
           weight: float = 1.0, grid_spacing: int = 2, **similarity_kwargs: Any) -> np.ndarray | torch.Tensor:
    """Instance optimisation: ``steps`` Adam steps on the displacement of one pair, from ``ddf``.

    ``ddf``: ``(ndim, *S)`` or ``(1, ndim, *S)`` voxels (e.g. a network's output, or zeros);
    ``fixed``/``moving``: ``(*S)``, ``(1, *S)`` or ``(1, 1, *S)``. Minimises ``similarity(warp(moving, u),
    fixed) + weight * smoothness(u)``, ``u`` parameterised on a grid ``grid_spacing`` times coarser than
    the image and linearly upsampled (1: every voxel free); ``lr`` is in image voxels per step. Returns
    the refined field, same type and shape as ``ddf``. Deterministic (no sampling).
    """
    as_numpy = not isinstance(ddf, torch.Tensor)
    u0 = torch.as_tensor(np.asarray(ddf, np.float32)) if as_numpy else ddf.detach().float()
    if u0.ndim in (3, 4) and u0.shape[0] == u0.ndim - 1:
        batched, ndim, u0 = False, u0.ndim - 1, u0[None]
    elif u0.ndim in (4, 5) and u0.shape[:2] == (1, u0.ndim - 2):
        batched, ndim = True, u0.ndim - 2
    else:
        raise ValueError(f"ddf must be (ndim, *S) or (1, ndim, *S), got {tuple(u0.shape)}")

    def image(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x, np.float32) if not isinstance(x, torch.Tensor) else x.detach().float())
        while t.ndim < ndim + 2:
            t = t[None]
        return t

    f, m = image(fixed), image(moving)
    shape = tuple(f.shape[2:])
    coarse = tuple(max(2, (n - 1) // max(1, grid_spacing) + 1) for n in shape)
    mode = "bilinear" if ndim == 2 else "trilinear"

    def dense(p: torch.Tensor) -> torch.Tensor:  # values stay in image voxels: lr means the same at any spacing
        return F.interpolate(p, size=shape, mode=mode, align_corners=True) if coarse != shape else p

    start = F.interpolate(u0, size=coarse, mode=mode, align_corners=True) if coarse != shape else u0
    param = torch.nn.Parameter(start.clone())
    score = similarity_loss(similarity, ndim, **similarity_kwargs).for_fixed(f)
    smooth = smoothness_loss(smoothness)
    opt = torch.optim.Adam([param], lr=lr)
    with torch.enable_grad(), warnings.catch_warnings():
        # MONAI's DiffusionLoss indexes with a list (a torch deprecation notice on every call)
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
        for _ in range(int(steps)):
            opt.zero_grad()
            u = dense(param)
            loss = score(warp(m, u)) + weight * smooth(u)
            loss.backward()
            opt.step()
    with torch.no_grad():
        out = dense(param).detach()
    if not batched:
        out = out[0]
    return out.numpy() if as_numpy else out

