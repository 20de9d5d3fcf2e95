"""Synthetic registration pairs with a known answer, from one real image (and its labels).

Both images of a pair are made from the same source image, each by its own random spatial transform
(a random affine plus a smooth random deformation) and its own intensity change (bias field, gamma,
noise), so a network can learn neither "the moving image is the undeformed one" nor equal intensities.
The ground-truth field ``u`` (fixed voxel ``x`` lies at ``x + u(x)`` in the moving image, the
convention of :mod:`.transforms`) is exact up to the numerical inverse of the moving transform.

Deformations: Gaussian-smoothed white-noise displacements (the elastic deformations of Simard et al.
2003; synthetic training fields as in Sokooti et al. 2017, MICCAI) or random cubic B-spline control
points (Rueckert et al. 1999; Eppenhof & Pluim 2019, IEEE TMI 38:1097). Intensity: a smooth
multiplicative bias field (exp of a low-order polynomial, as MR bias models, Sled et al. 1998), a gamma
change and Gaussian noise. Everything is seeded: equal seeds give
equal pairs, and :func:`synthetic_pairs` draws the training and test deformations from separate seed
streams so a test pair never repeats a training deformation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medlearn.data.images import ImageMeta
from medlearn.tasks.register.data import RegistrationPair
from medlearn.tasks.register.transforms import (
    affine_to_ddf,
    bspline_grid_shape,
    bspline_to_ddf,
    compose_fields,
    invert_field,
    warp,
    warp_labels,
)

__all__ = ["DeformationSettings", "intensity_change", "make_synthetic_pair", "random_affine", "random_smooth_field",
           "synthetic_pairs"]


@dataclass(frozen=True)
class DeformationSettings:
    """How strong the random transforms and intensity changes are (per image of a pair)."""

    max_displacement: float = 4.0  #: largest smooth displacement, voxels (before the affine)
    smoothness: float = 6.0  #: Gaussian sigma (voxels) of the noise field, or the B-spline spacing
    kind: str = "gaussian"  #: "gaussian" (smoothed noise) or "bspline" (random control points)
    rotation_deg: float = 5.0  #: uniform in +-rotation (about each axis in 3D)
    scale: float = 0.05  #: log-uniform scale in [1 - scale, 1 + scale] per axis
    shear: float = 0.02
    translation: float = 3.0  #: voxels, uniform in +-translation per axis
    bias: float = 0.2  #: bias-field log-amplitude
    gamma: float = 0.15  #: log-gamma sd
    noise: float = 0.02  #: Gaussian noise sd relative to the intensity range


def random_affine(ndim: int, shape: Sequence[int], rng: np.random.Generator, rotation_deg: float = 5.0,
                  scale: float = 0.05, shear: float = 0.02, translation: float = 3.0) -> np.ndarray:
    """A random affine ``(ndim + 1, ndim + 1)`` on voxel indices about the image centre."""
    c = (np.asarray(shape, float) - 1) / 2
    angles = np.radians(rng.uniform(-rotation_deg, rotation_deg, 1 if ndim == 2 else 3))
    rot = np.eye(ndim)
    planes = [(0, 1)] if ndim == 2 else [(0, 1), (0, 2), (1, 2)]
    for a, (i, j) in zip(angles, planes, strict=True):
        r = np.eye(ndim)
        r[i, i] = r[j, j] = math.cos(a)
        r[i, j], r[j, i] = -math.sin(a), math.sin(a)
        rot = rot @ r
    sc = np.diag(np.exp(rng.uniform(math.log(1 - scale), math.log(1 + scale), ndim)))
    sh = np.eye(ndim) + np.triu(rng.uniform(-shear, shear, (ndim, ndim)), 1)
    lin = rot @ sh @ sc
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = lin
    m[:ndim, ndim] = c - lin @ c + rng.uniform(-translation, translation, ndim)
    return m


def random_smooth_field(shape: Sequence[int], rng: np.random.Generator, max_displacement: float = 4.0,
                        smoothness: float = 6.0, kind: str = "gaussian") -> np.ndarray:
    """A random smooth DDF ``(ndim, *S)`` in voxels whose largest vector has length ``max_displacement``.

    ``kind="gaussian"``: white noise smoothed with a Gaussian of sigma ``smoothness``;
    ``kind="bspline"``: uniform random control points every ``smoothness`` voxels, cubic B-spline field.
    """
    from scipy import ndimage

    ndim = len(shape)
    if kind == "gaussian":
        field = np.stack([ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), smoothness, mode="reflect")
                          for _ in range(ndim)])
    elif kind == "bspline":
        spacing = max(2, int(round(smoothness)))
        grid = bspline_grid_shape(shape, spacing)
        ctrl = torch.as_tensor(rng.uniform(-1, 1, (1, ndim, *grid)), dtype=torch.float64)
        field = bspline_to_ddf(ctrl, shape, spacing)[0].numpy()
    else:
        raise ValueError(f"kind must be 'gaussian' or 'bspline', got {kind!r}")
    norm = np.sqrt((field**2).sum(0)).max()
    return (field * (max_displacement / max(norm, 1e-12))).astype(np.float32)


def intensity_change(image: np.ndarray, rng: np.random.Generator, bias: float = 0.2, gamma: float = 0.15,
                     noise: float = 0.02) -> np.ndarray:
    """``image (*S)`` with a smooth multiplicative bias field, a gamma change and Gaussian noise.

    Intensities are mapped to [0, 1] (min-max) first; the result stays in about [0, 1].
    """
    lo, hi = float(image.min()), float(image.max())
    x = (image - lo) / max(hi - lo, 1e-8)
    x = np.clip(x, 0, 1) ** math.exp(rng.normal(0, gamma))
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    log_bias = sum(rng.normal(0, bias) * c for c in coords) + sum(rng.normal(0, bias / 2) * c * c for c in coords)
    x = x * np.exp(log_bias - np.mean(log_bias))
    x = x + rng.normal(0, noise, image.shape)
    return x.astype(np.float32)


def _random_mapping(shape: Sequence[int], rng: np.random.Generator, s: DeformationSettings) -> torch.Tensor:
    """The DDF ``(1, ndim, *S)`` of "random affine, then smooth deformation" as one mapping."""
    ndim = len(shape)
    aff = affine_to_ddf(random_affine(ndim, shape, rng, s.rotation_deg, s.scale, s.shear, s.translation), shape,
                        torch.float64)
    smooth = torch.as_tensor(random_smooth_field(shape, rng, s.max_displacement, s.smoothness, s.kind),
                             dtype=torch.float64)[None]
    return compose_fields(aff, smooth)


def _source(image: np.ndarray) -> np.ndarray:
    src = np.asarray(image, np.float32)
    return src[0] if src.ndim in (3, 4) and src.shape[0] == 1 and src.ndim - 1 in (2, 3) else src


def make_synthetic_pair(image: np.ndarray, label: np.ndarray | None = None, seed: int = 0,
                        settings: DeformationSettings | None = None, meta: ImageMeta | None = None,
                        name: str | None = None, moving_image: np.ndarray | None = None,
                        field_factor: int = 1) -> RegistrationPair:
    """One pair from ``image`` (``(*S)`` or ``(1, *S)``) and optional integer ``label`` of the same shape.

    ``fixed = source(x + u_f(x))``, ``moving = source(y + u_m(y))`` with independent random mappings,
    so the true field is ``u = compose(inverse(u_m), u_f)`` (``pair.known_ddf``). Labels are warped by
    nearest neighbour. Intensities end up in about [0, 1]. ``moving_image``: another contrast of the same
    anatomy on the same grid (e.g. the PD slice of a T1 one) that the moving image is made from: a
    multi-modal pair with a known field. ``field_factor``: build (and invert) the random mappings on a grid
    this many times coarser and resize them (:func:`~.transforms.resize_field`): smooth fields lose nothing,
    and a 3D brain at 1 mm is made in seconds instead of a minute (displacements, translations and the
    smoothness stay in voxels of the image itself).
    """
    import dataclasses

    from medlearn.tasks.register.transforms import resize_field

    s = settings or DeformationSettings()
    src = _source(image)
    shape = src.shape
    msrc = src if moving_image is None else _source(moving_image)
    if msrc.shape != shape:
        raise ValueError(f"moving_image has shape {msrc.shape}, image {shape}: they must share one grid")
    ndim = len(shape)
    rng = np.random.default_rng(seed)
    f = max(1, int(field_factor))
    coarse = tuple((n - 1) // f + 1 for n in shape)
    cs = dataclasses.replace(s, max_displacement=s.max_displacement / f, smoothness=max(s.smoothness / f, 1.0),
                             translation=s.translation / f) if f > 1 else s
    u_f = _random_mapping(coarse, rng, cs)
    u_m = _random_mapping(coarse, rng, cs)
    true = compose_fields(invert_field(u_m, iterations=40), u_f)
    if f > 1:
        u_f, u_m, true = (resize_field(u, shape) for u in (u_f, u_m, true))
    src_t = torch.as_tensor(src, dtype=torch.float64)[None, None]
    fixed = warp(src_t, u_f, padding="zeros")[0, 0].numpy()
    moving = warp(torch.as_tensor(msrc, dtype=torch.float64)[None, None], u_m, padding="zeros")[0, 0].numpy()
    fixed = intensity_change(fixed, rng, s.bias, s.gamma, s.noise)
    moving = intensity_change(moving, rng, s.bias, s.gamma, s.noise)
    fl = ml = None
    if label is not None:
        lab = torch.as_tensor(np.asarray(label).reshape(shape).astype(np.int64))[None, None]
        fl = warp_labels(lab, u_f)[0].numpy().astype(np.int32)
        ml = warp_labels(lab, u_m)[0].numpy().astype(np.int32)
    meta = meta or ImageMeta("synthetic", "synthetic", tuple(shape), (1.0,) * ndim, np.eye(4))
    return RegistrationPair(name=name or f"synthetic_{seed}", fixed=fixed[None], moving=moving[None], fixed_meta=meta,
                            moving_meta=meta, fixed_label=fl, moving_label=ml,
                            known_ddf=true[0].numpy().astype(np.float32),
                            notes=[f"synthetic pair, seed {seed}, {s.kind} deformation"])


def synthetic_pairs(image: np.ndarray, label: np.ndarray | None = None, n: int = 8, split: str = "train",
                    seed: int = 0, settings: DeformationSettings | None = None,
                    meta: ImageMeta | None = None, moving_image: np.ndarray | None = None,
                    field_factor: int = 1) -> list[RegistrationPair]:
    """``n`` pairs for ``split`` (``"train"``, ``"val"`` or ``"test"``): each split has its own seed stream
    (``SeedSequence(seed).spawn``), so train, val and test never share a deformation."""
    streams = {"train": 0, "val": 1, "test": 2}
    if split not in streams:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    child = np.random.SeedSequence(seed).spawn(3)[streams[split]]
    seeds = child.generate_state(n)
    return [make_synthetic_pair(image, label, int(sd), settings, meta, name=f"{split}_{k:03d}",
                                moving_image=moving_image, field_factor=field_factor) for k, sd in enumerate(seeds)]
