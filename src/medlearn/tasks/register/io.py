"""Write (and read back) registration results: displacement fields in the ITK/ANTs convention, warped
images and warped label maps on the fixed image's grid.

The displacement-field file is the one ITK, ANTs (``antsApplyTransforms``), SimpleITK's
``DisplacementFieldTransform`` and 3D Slicer read as a dense transform:

* a NIfTI-1 file, 5D: shape ``(X, Y, Z, 1, ndim)`` (``(X, Y, 1, 1, 2)`` in 2D), ``intent_code`` 1007
  (``NIFTI_INTENT_VECTOR``), float32;
* the header's affine (sform and qform) is the *fixed* image's voxel -> RAS+ affine, so the field's
  grid is the fixed image's;
* the vector at voxel ``x`` is the displacement ``d`` in millimetres **in ITK's LPS physical frame**
  (x towards patient Left, y Posterior, z Superior) — *not* RAS, although the NIfTI header is RAS: the
  vectors are written as ITK holds them, which is what ITK/ANTs expect (``ants`` ``*Warp.nii.gz`` files
  follow it; FSL or nibabel users must flip the first two components);
* it maps a fixed-image point to its moving-image point: ``p_moving = p_fixed + d(p_fixed)``, the
  direction resampling needs (``sitk.Resample(moving, fixed, DisplacementFieldTransform(field))``
  gives the warped moving image).

From our voxel DDF ``u`` (:mod:`.transforms`: fixed voxel ``x`` lies at voxel ``x + u(x)``, on the
fixed grid): ``d_RAS = A[:n, :n] @ u`` with ``A`` the fixed affine, and ``d_LPS = diag(-1, -1[, 1]) @ d_RAS``.
Because ``d`` is physical, the field also applies to the *original* moving image in its own geometry.
The test ``test_written_field_matches_simpleitk`` applies a written field with SimpleITK and compares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medlearn.data.images import ImageMeta, write_image
from medlearn.errors import InputError
from medlearn.io import atomic_path

__all__ = ["ddf_to_physical_lps", "physical_lps_to_ddf", "read_displacement_field", "write_displacement_field",
           "write_warped_image", "write_warped_labels"]

NIFTI_INTENT_VECTOR = 1007


def _linear(meta: ImageMeta) -> np.ndarray:
    n = meta.ndim
    return np.asarray(meta.affine, float)[:n, :n]


def _ras_to_lps(ndim: int) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0][:ndim])


def ddf_to_physical_lps(ddf: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Voxel DDF ``(ndim, *S)`` on ``meta``'s grid -> physical LPS displacement in mm ``(ndim, *S)``."""
    n = ddf.shape[0]
    m = _ras_to_lps(n) @ _linear(meta)
    return np.einsum("ij,j...->i...", m, ddf.astype(np.float64))


def physical_lps_to_ddf(disp: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Inverse of :func:`ddf_to_physical_lps`."""
    n = disp.shape[0]
    m = np.linalg.inv(_ras_to_lps(n) @ _linear(meta))
    return np.einsum("ij,j...->i...", m, disp.astype(np.float64))


def write_displacement_field(path: str | Path, ddf: np.ndarray | torch.Tensor, like: ImageMeta) -> Path:
    """Write ``ddf`` (``(ndim, *S)`` or ``(1, ndim, *S)``, voxels, fixed grid) as an ITK displacement field.

    ``like``: the fixed image's geometry. ``path`` must end in ``.nii`` or ``.nii.gz``.
    """
    import nibabel as nib

    path = Path(path)
    arr = ddf.detach().cpu().numpy() if isinstance(ddf, torch.Tensor) else np.asarray(ddf)
    if arr.ndim == like.ndim + 2:
        arr = arr[0]
    n = like.ndim
    if arr.shape != (n, *like.spatial_shape):
        raise ValueError(f"ddf of shape {arr.shape} does not fit a {n}D image of shape {like.spatial_shape}")
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise InputError(path, "a displacement field is written as NIfTI", "use a .nii.gz file name")
    disp = ddf_to_physical_lps(arr, like).astype(np.float32)
    data = np.moveaxis(disp, 0, -1)  # (*S, ndim)
    if n == 2:
        data = data[:, :, None]  # (X, Y, 1, ndim)
    data = data[:, :, :, None, :]  # (X, Y, Z, 1, ndim)
    img = nib.Nifti1Image(data, np.asarray(like.affine, float))
    img.header.set_intent(NIFTI_INTENT_VECTOR, (), "")
    img.set_sform(np.asarray(like.affine, float), code=1)
    img.set_qform(np.asarray(like.affine, float), code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def read_displacement_field(path: str | Path) -> tuple[np.ndarray, ImageMeta]:
    """Read a field written by :func:`write_displacement_field` (or ITK/ANTs) -> voxel DDF ``(ndim, *S)``
    on its own grid, and that grid's :class:`~medlearn.data.images.ImageMeta`."""
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise InputError(path, "displacement field not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as exc:  # nibabel raises several types for a bad file
        raise InputError(path, f"cannot read displacement field ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 5 or data.shape[3] != 1 or data.shape[4] not in (2, 3):
        raise InputError(path, f"not a displacement field: shape {data.shape}", "expected (X, Y, Z, 1, ndim)")
    n = data.shape[4]
    vec = np.moveaxis(data[:, :, :, 0, :], -1, 0)  # (ndim, X, Y, Z)
    if n == 2:
        if vec.shape[3] != 1:
            raise InputError(path, f"a 2-component field must have one slice, shape {data.shape}")
        vec = vec[..., 0]
    spatial = tuple(int(s) for s in vec.shape[1:])
    zooms = tuple(float(z) for z in img.header.get_zooms()[:n])
    meta = ImageMeta(str(path), "nifti", spatial, zooms, np.asarray(img.affine, float))
    return physical_lps_to_ddf(vec, meta).astype(np.float32), meta


def _batched(ddf: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(ddf, dtype=torch.float32)
    return t[None] if t.ndim and t.shape[0] in (2, 3) and t.ndim in (3, 4) else t


def write_warped_image(path: str | Path, moving: np.ndarray, ddf: np.ndarray | torch.Tensor,
                       like: ImageMeta) -> Path:
    """Warp ``moving`` (``(C, *S)`` on the fixed grid) by ``ddf`` (linear) and write it with the fixed
    image's geometry ``like``."""
    from medlearn.tasks.register.transforms import warp

    u = _batched(ddf)
    img = torch.as_tensor(np.asarray(moving, np.float32))[None]
    out = warp(img, u).numpy()[0]
    return write_image(path, out, like)


def write_warped_labels(path: str | Path, labels: np.ndarray, ddf: np.ndarray | torch.Tensor,
                        like: ImageMeta) -> Path:
    """Warp an integer label map ``(1, *S)`` on the fixed grid by ``ddf`` (nearest neighbour) and write it
    with the fixed image's geometry (dtype kept, at least 8-bit unsigned for rasters)."""
    from medlearn.tasks.register.transforms import warp_labels

    lab = np.asarray(labels)
    u = _batched(ddf)
    out = warp_labels(torch.as_tensor(lab.astype(np.int64))[None], u).numpy()[0]
    dtype = lab.dtype if lab.dtype != np.int64 else np.int32
    if str(path).lower().endswith((".png", ".tif", ".tiff")) and out.max() < 256:
        dtype = np.uint8
    return write_image(path, out.astype(dtype), like)

