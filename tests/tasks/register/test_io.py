"""Displacement fields written in the ITK convention: SimpleITK applies them exactly as we warp."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from medlearn.data.images import ImageMeta, read_image, write_image
from medlearn.tasks.register.io import (
    read_displacement_field,
    write_displacement_field,
    write_warped_image,
    write_warped_labels,
)
from medlearn.tasks.register.transforms import warp
from tests.tasks.register.conftest import smooth_image


def _meta(ndim: int) -> ImageMeta:
    """A grid with anisotropic spacing, an oblique (3D) or flipped (2D) direction and an offset origin."""
    a = np.eye(4)
    if ndim == 3:
        c, s = math.cos(0.5), math.sin(0.5)
        a[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([1.5, 1.0, 2.0])
        a[:3, 3] = [10, -20, 5]
        shape = (20, 24, 16)
    else:
        a[0, 0], a[1, 1] = 0.8, -1.2
        a[:2, 3] = [3, 4]
        shape = (20, 24)
    return ImageMeta("fixed", "nifti", shape, tuple(np.linalg.norm(a[:3, :ndim], axis=0)), a)


@pytest.mark.parametrize("ndim", [2, 3])
def test_written_field_matches_simpleitk(tmp_path, ndim):
    meta = _meta(ndim)
    rng = np.random.default_rng(ndim)
    moving = smooth_image(meta.spatial_shape, seed=ndim) * 10
    u = np.stack([ndimage.gaussian_filter(rng.standard_normal(meta.spatial_shape), 3) * 8 for _ in range(ndim)])
    u = u.astype(np.float32)
    ours = warp(torch.tensor(moving)[None, None], torch.tensor(u)[None]).numpy()[0, 0]

    write_image(tmp_path / "moving.nii.gz", moving[None], meta)
    path = write_displacement_field(tmp_path / "field.nii.gz", u, meta)
    header = nib.load(str(path)).header
    assert int(header["intent_code"]) == 1007 and header.get_data_shape()[3:] == (1, ndim)

    field = sitk.ReadImage(str(path), sitk.sitkVectorFloat64)
    moving_itk = sitk.ReadImage(str(tmp_path / "moving.nii.gz"))
    assert field.GetDimension() == ndim and field.GetNumberOfComponentsPerPixel() == ndim
    resampled = sitk.Resample(moving_itk, moving_itk, sitk.DisplacementFieldTransform(field), sitk.sitkLinear, -999.0)
    theirs = sitk.GetArrayFromImage(resampled).T
    inside = theirs != -999.0  # ITK leaves points mapped outside the image; ours clamps to the border there
    assert inside.mean() > 0.8
    assert np.abs(theirs - ours)[inside].max() < 1e-3
    # LPS matters: the same vectors read as RAS would move the image elsewhere
    assert np.abs(u).max() > 1.0

    back, back_meta = read_displacement_field(path)
    assert np.allclose(back, u, atol=1e-4) and np.allclose(back_meta.affine, meta.affine)


def test_written_field_applies_to_the_original_moving_geometry(tmp_path):
    """A physical field also warps the moving image kept on its own (different) grid."""
    meta = _meta(3)
    m = np.eye(4)
    m[:3, 3] = [1.0, -2.0, 0.5]
    from medlearn.tasks.register.transforms import affine_to_ddf

    u = affine_to_ddf(m, meta.spatial_shape)[0].numpy()
    path = write_displacement_field(tmp_path / "f.nii.gz", u, meta)
    d = sitk.ReadImage(str(path), sitk.sitkVectorFloat64)
    tx = sitk.DisplacementFieldTransform(d)
    fixed_point = np.asarray(meta.affine) @ np.array([5.0, 6.0, 7.0, 1.0])
    lps = np.array([-fixed_point[0], -fixed_point[1], fixed_point[2]])
    mapped = np.asarray(tx.TransformPoint(lps.tolist()))
    expected = np.asarray(meta.affine) @ np.array([6.0, 4.0, 7.5, 1.0])
    assert np.allclose(mapped, [-expected[0], -expected[1], expected[2]], atol=1e-4)


def test_warped_image_and_labels_keep_the_fixed_geometry(tmp_path):
    meta = _meta(3)
    img = smooth_image(meta.spatial_shape)
    lab = (img > 0.5).astype(np.uint8)
    u = np.zeros((3, *meta.spatial_shape), np.float32)
    u[0] = 1.0
    write_warped_image(tmp_path / "w.nii.gz", img[None], u, meta)
    write_warped_labels(tmp_path / "l.nii.gz", lab[None], u, meta)
    w, wm = read_image(tmp_path / "w.nii.gz")
    lw, _ = read_image(tmp_path / "l.nii.gz", dtype=None)
    assert np.allclose(wm.affine, meta.affine)
    assert np.allclose(w[0, :-1], img[1:], atol=1e-5)
    assert lw.dtype == np.uint8 and np.array_equal(lw[0, :-1], lab[1:])
