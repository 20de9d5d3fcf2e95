import locale
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlearn.data.images import keep_locale, read_image, write_image
from medlearn.errors import InputError


def _nifti(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    data = np.random.default_rng(0).random((10, 12, 5)).astype(np.float32)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [1, 2, 3]
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path, data, affine


def test_nifti_roundtrip_keeps_affine_and_spacing(tmp_path: Path) -> None:
    path, data, affine = _nifti(tmp_path)
    array, meta = read_image(path)
    assert array.shape == (1, 10, 12, 5)
    assert meta.spacing == (2.0, 3.0, 4.0)
    np.testing.assert_allclose(array[0], data)
    for suffix in (".mha", ".nrrd", ".nii.gz"):
        out = write_image(tmp_path / f"y{suffix}", array, meta)
        back, meta2 = read_image(out)
        np.testing.assert_allclose(back, array)
        np.testing.assert_allclose(meta2.affine, affine, atol=1e-5)


def test_dicom_series_folder_reads_as_one_volume(tmp_path: Path) -> None:
    import SimpleITK as sitk

    volume = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)  # (Z, Y, X)
    folder = tmp_path / "series"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    with keep_locale():  # GDCM's writer leaves the process in the C locale
        for z in range(4):
            sl = sitk.GetImageFromArray(volume[z])
            sl.SetSpacing((0.5, 0.7))
            sl.SetMetaData("0020|0032", f"0\\0\\{z * 2.5}")  # image position: 2.5 mm apart
            sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
            sl.SetMetaData("0020|000e", "1.2.3.4")
            sl.SetMetaData("0020|0013", str(z))
            sl.SetMetaData("0008|0060", "CT")
            writer.SetFileName(str(folder / f"s{z}.dcm"))
            writer.Execute(sl)
    encoding = locale.getpreferredencoding(False)
    array, meta = read_image(folder)
    assert locale.getpreferredencoding(False) == encoding  # reading DICOM leaves the locale alone
    assert array.shape == (1, 5, 6, 4)  # (C, X, Y, Z)
    np.testing.assert_allclose(meta.spacing, (0.5, 0.7, 2.5), atol=1e-4)
    np.testing.assert_array_equal(array[0, :, :, 2], volume[2].T)
    single, smeta = read_image(folder / "s1.dcm")
    assert single.shape == (1, 5, 6) and smeta.format == "dicom"


def test_png_roundtrip_and_orientation(tmp_path: Path) -> None:
    from PIL import Image

    hw = np.zeros((20, 30), np.uint8)
    hw[2, 25] = 255  # row 2, column 25
    Image.fromarray(hw).save(tmp_path / "a.png")
    array, _ = read_image(tmp_path / "a.png", dtype=None)
    assert array.shape == (1, 30, 20) and array[0, 25, 2] == 255
    write_image(tmp_path / "b.png", array)
    assert (np.asarray(Image.open(tmp_path / "b.png")) == hw).all()


@pytest.mark.parametrize("content,problem", [(None, "file not found"), (b"\x89PNG\r\n\x1a\n\x00\x00", "cannot read"),
                                             (b"not an image", "cannot read")])
def test_bad_files_raise_input_error_naming_the_file(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_image(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_truncated_nifti_and_nan_are_rejected(tmp_path: Path) -> None:
    path, _, _ = _nifti(tmp_path)
    raw = path.read_bytes()
    truncated = tmp_path / "t.nii.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="t.nii.gz"):
        read_image(truncated)
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.nii.gz")


def test_palette_gif_of_grays_reads_as_one_channel_and_colour_palette_as_rgb(tmp_path: Path) -> None:
    from PIL import Image

    mask = np.zeros((6, 5), np.uint8)
    mask[2:4, 1:3] = 1
    gray = Image.fromarray(mask, mode="P")
    gray.putpalette([4, 2, 4, 252, 254, 252])  # DRIVE 2nd_manual style near-gray palette
    gray.save(tmp_path / "gray.gif")
    colour = Image.fromarray(mask, mode="P")
    colour.putpalette([0, 0, 0, 255, 0, 0])
    colour.save(tmp_path / "colour.gif")
    data, _ = read_image(tmp_path / "gray.gif", dtype=None)
    assert data.shape == (1, 5, 6)
    assert set(np.unique(data)) <= {2, 3, 4, 252, 253, 254}  # the palette's gray levels
    assert (data[0] > 127).sum() == 4
    data, _ = read_image(tmp_path / "colour.gif", dtype=None)
    assert data.shape == (3, 5, 6)
