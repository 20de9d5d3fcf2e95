"""medlearn.data.dicom on real files: the repo's dicom_samples and pydicom's own test files.

Bad series are made in tmp_path by copying real files and editing their headers with pydicom.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlearn.data.dicom import DicomSeries, is_dicom_file, read_dicom, read_series, scan_series
from medlearn.data.images import keep_locale, read_image
from medlearn.errors import InputError

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
DICOMDIR_TESTS = TEST_FILES / "dicomdirtests"
CT5N = DICOMDIR_TESTS / "98892001" / "CT5N"  # 5 axial CT slices, 2.5 mm apart, files without extension
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture
def samples(shared_data: Path) -> Path:
    return shared_data / "dicom_samples"


def _sitk_series(folder: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    with keep_locale():
        files = reader.GetGDCMSeriesFileNames(str(folder))
        reader.SetFileNames(files)
        return reader.Execute(), list(files)


def _sitk_file(path: Path):
    import SimpleITK as sitk

    with keep_locale():
        return sitk.ReadImage(str(path))


def _sitk_affine(image) -> np.ndarray:
    """SimpleITK's geometry as a RAS+ voxel->mm affine, computed here independently of images.py."""
    nd = image.GetDimension()
    lps = np.eye(4)
    lps[:nd, :nd] = np.asarray(image.GetDirection()).reshape(nd, nd) * np.asarray(image.GetSpacing())[None, :]
    lps[:nd, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def _sitk_xyz(image) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)  # (Z, Y, X[, C])
    return np.transpose(arr, (2, 1, 0) if arr.ndim == 3 else (3, 2, 1, 0)[: arr.ndim])


def _copy_ct5n(tmp_path: Path, name: str = "series") -> list[Path]:
    folder = tmp_path / name
    shutil.copytree(CT5N, folder)
    return sorted(folder.iterdir())


def _edit(path: Path, **attrs) -> None:
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message  # one line for the CLI
    return message


# --- detection and grouping ---------------------------------------------------------------------------


def test_is_dicom_file_judges_content_not_suffix(tmp_path: Path) -> None:
    assert is_dicom_file(get_testdata_file("CT_small.dcm"))
    assert all(is_dicom_file(f) for f in CT5N.iterdir())  # PACS export: no extension
    renamed = tmp_path / "IM0001"
    shutil.copy(get_testdata_file("CT_small.dcm"), renamed)
    assert is_dicom_file(renamed)
    # a DICOM stream without the 128-byte preamble and "DICM"
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.preamble = None
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    bare = tmp_path / "bare"
    ds.save_as(bare, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert bare.read_bytes()[128:132] != b"DICM"
    assert is_dicom_file(bare)
    (tmp_path / "notes.dcm").write_text("not an image\n")
    (tmp_path / "fake").write_bytes(b"\x08\x00" + bytes(range(256)) * 4)  # starts like DICOM, is not
    (tmp_path / "empty").write_bytes(b"")
    for name in ("notes.dcm", "fake", "empty", "missing"):
        assert not is_dicom_file(tmp_path / name)
    assert not is_dicom_file(tmp_path)


def test_scan_series_groups_by_series_uid_from_headers(tmp_path: Path) -> None:
    root = DICOMDIR_TESTS / "98892003"  # MR localizers, pilots and a radial angio, nested folders
    expected: dict[str, int] = {}
    for f in root.rglob("*"):
        if f.is_file():
            uid = pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID
            expected[uid] = expected.get(uid, 0) + 1
    (tmp_path / "README.txt").write_text("exported by PACS\n")  # non-DICOM files are ignored
    found = scan_series([root, tmp_path / "README.txt"])
    assert {s.uid: len(s.files) for s in found} == expected
    assert all(isinstance(s, DicomSeries) and s.modality == "MR" and not s.is_multiframe for s in found)
    assert all("PixelData" not in h for s in found for h in s.headers)  # headers only
    angio = next(s for s in found if len(s.files) == 7)
    assert angio.description == "MR, 7 files"  # no free-text SeriesDescription (it may identify)
    patient = str(pydicom.dcmread(angio.files[0], stop_before_pixels=True).PatientName)
    assert patient and patient not in angio.description


def test_folder_without_dicom_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    assert "no DICOM file found" in _error(read_dicom, tmp_path)
    assert "no DICOM file found" in _error(scan_series, tmp_path)
    assert "file not found" in _error(read_dicom, tmp_path / "nope")


# --- geometry against SimpleITK ---------------------------------------------------------------------------


def test_regular_series_matches_simpleitk() -> None:
    array, meta = read_dicom(CT5N)
    image, sitk_files = _sitk_series(CT5N)
    assert array.shape == (1, 16, 16, 5) and array.dtype == np.float32
    np.testing.assert_allclose(meta.affine, _sitk_affine(image), atol=1e-6)
    np.testing.assert_allclose(meta.spacing, image.GetSpacing(), atol=1e-6)
    np.testing.assert_array_equal(array[0], _sitk_xyz(image))  # rescaled (HU) the same way
    assert meta.format == "dicom" and meta.spatial_shape == (16, 16, 5)
    assert meta.extra["files"] == sitk_files  # sorted along the normal like GDCM
    assert meta.extra["series_uid"] == pydicom.dcmread(CT5N / "2062").SeriesInstanceUID
    assert (meta.extra["modality"], meta.extra["n_frames"], meta.extra["n_series"]) == ("CT", 5, 1)
    # z index k is the k-th sorted file, at its ImagePositionPatient
    for k, f in enumerate(meta.extra["files"]):
        ipp = np.asarray(pydicom.dcmread(f).ImagePositionPatient, float)
        np.testing.assert_allclose((meta.affine @ [0, 0, k, 1])[:3], LPS_TO_RAS[:3, :3] @ ipp, atol=1e-4)
    patient = str(pydicom.dcmread(CT5N / "2062").PatientName)
    assert patient and patient not in repr(meta.extra)


def test_single_files_match_simpleitk_and_are_rescaled() -> None:
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = Path(get_testdata_file(name))
        array, meta = read_dicom(path)
        image = _sitk_file(path)
        assert array.shape == (1, image.GetSize()[0], image.GetSize()[1]) and meta.ndim == 2
        np.testing.assert_allclose(meta.affine, _sitk_affine(image), atol=1e-6)
        np.testing.assert_array_equal(array[0], _sitk_xyz(image)[..., 0])
        assert meta.spacing == tuple(image.GetSpacing()[:2])
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert float(ds.RescaleIntercept) == -1024
    ct, _ = read_dicom(get_testdata_file("CT_small.dcm"))
    np.testing.assert_array_equal(ct[0], ds.pixel_array.T.astype(np.float32) - 1024)


def test_colour_image_has_three_channels_and_simpleitk_geometry(samples: Path) -> None:
    path = samples / "ct_brain_series_fake_phi" / "ctbrain1.dcm"  # JPEG, YBR, tilted orientation
    array, meta = read_dicom(path)
    assert array.shape == (3, 510, 456)
    image = _sitk_file(path)
    # the column cosine is stored with norm 0.9995; normalised like GDCM
    np.testing.assert_allclose(meta.affine, _sitk_affine(image), atol=1e-6)
    rgb = pydicom.dcmread(path).pixel_array  # (rows, cols, 3) RGB
    np.testing.assert_array_equal(array, np.transpose(rgb, (2, 1, 0)).astype(np.float32))
    assert array.max() == 255  # colour is not rescaled (its RescaleIntercept -1024 is the source CT's)


def test_multiframe_seg_matches_simpleitk(samples: Path) -> None:
    array, meta = read_dicom(samples / "liver_seg.dcm")
    image = _sitk_file(samples / "liver_seg.dcm")
    assert array.shape == (1, 512, 512, 3)
    np.testing.assert_allclose(meta.affine, _sitk_affine(image), atol=1e-6)
    # 1-bit BINARY segments: the stored 0/1 (SimpleITK scales them to 0/255)
    assert set(np.unique(array)) == {0.0, 1.0} and array.sum() > 1000
    np.testing.assert_array_equal(array[0] > 0, _sitk_xyz(image) > 0)
    assert meta.extra["n_frames"] == 3 and meta.extra["frame_numbers"] == [1, 2, 3]


def test_multiframe_frames_are_ordered_by_plane_position(samples: Path, tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    src = samples / "enhanced_mr_multiframe.dcm"
    raw = pydicom.dcmread(src).pixel_array  # (10, 64, 64), stored order
    stored_z = np.array([4, 1, 9, 0, 7, 2, 8, 3, 6, 5], float) * 1.5  # frames stored shuffled

    def with_groups(z: np.ndarray, path: Path) -> Path:
        ds = pydicom.dcmread(src)
        shared = Dataset()
        shared.PixelMeasuresSequence = Sequence([Dataset()])
        shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.75]  # rows (Y), columns (X)
        shared.PixelMeasuresSequence[0].SliceThickness = 1.5
        shared.PlaneOrientationSequence = Sequence([Dataset()])
        shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        frames = []
        for zi in z:
            item = Dataset()
            item.PlanePositionSequence = Sequence([Dataset()])
            item.PlanePositionSequence[0].ImagePositionPatient = [-10.0, 20.0, float(zi)]
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
        ds.save_as(path)
        return path

    array, meta = read_dicom(with_groups(stored_z, tmp_path / "emr.dcm"))
    order = np.argsort(stored_z)
    assert array.shape == (1, 64, 64, 10)
    for k, i in enumerate(order):
        np.testing.assert_array_equal(array[0, ..., k], raw[i].T.astype(np.float32))
    assert meta.extra["frame_numbers"] == [int(i) + 1 for i in order]
    assert meta.spacing == pytest.approx((0.75, 0.5, 1.5))
    np.testing.assert_allclose(meta.affine, [[-0.75, 0, 0, 10], [0, -0.5, 0, -20], [0, 0, 1.5, 0], [0, 0, 0, 1]])
    gappy = np.delete(np.arange(11) * 1.5, 5)  # frame at 7.5 mm missing
    assert "irregular slice spacing" in _error(read_dicom, with_groups(gappy, tmp_path / "gap.dcm"))


def test_multiframe_without_positions_keeps_stored_order(samples: Path) -> None:
    array, meta = read_dicom(samples / "enhanced_mr_multiframe.dcm")  # functional groups stripped
    raw = pydicom.dcmread(samples / "enhanced_mr_multiframe.dcm").pixel_array
    assert array.shape == (1, 64, 64, 10)
    np.testing.assert_array_equal(array[0, ..., 3], raw[3].T.astype(np.float32))
    assert "stored order" in meta.extra["geometry"]
    assert meta.extra["frame_numbers"] == list(range(1, 11))


def test_gantry_tilt_keeps_exact_slice_positions(tmp_path: Path) -> None:
    folder = tmp_path / "tilt"
    folder.mkdir()
    c, s = np.cos(0.2), np.sin(0.2)
    for k in range(4):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.ImageOrientationPatient = [1, 0, 0, 0, round(c, 6), round(-s, 6)]
        ds.ImagePositionPatient = [-10, -20, 30 + 3.0 * k]  # table steps of 3 mm, not along the normal
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"s{k}")
    array, meta = read_dicom(folder)
    assert array.shape == (1, 128, 128, 4)
    for k in range(4):  # every slice lands on its own ImagePositionPatient
        np.testing.assert_allclose((meta.affine @ [0, 0, k, 1])[:3], [10, 20, 30 + 3.0 * k], atol=1e-6)
    assert meta.extra["gantry_tilt_deg"] == pytest.approx(np.degrees(0.2), abs=1e-3)
    image, _ = _sitk_series(folder)  # SimpleITK agrees in-plane, but puts the slices on the normal
    np.testing.assert_allclose(meta.affine[:, [0, 1, 3]], _sitk_affine(image)[:, [0, 1, 3]], atol=1e-6)


# --- bad series -------------------------------------------------------------------------------------------


def test_two_series_in_one_folder_lists_both(tmp_path: Path) -> None:
    files = _copy_ct5n(tmp_path)
    other = tmp_path / "series" / "IM_other"
    shutil.copy(get_testdata_file("CT_small.dcm"), other)
    _edit(other, SeriesInstanceUID="1.2.3.4.5", SeriesDescription="OTHER")
    uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    message = _error(read_dicom, tmp_path / "series")
    assert "2 DICOM series" in message and "choose one by index" in message
    # modality and counts only: no UID, no free-text description (either may identify a patient or an exam)
    assert "(CT, 5 files)" in message and "(CT, 1 file)" in message
    assert uid not in message and "SmartScore" not in message and "OTHER" not in message
    assert read_dicom(tmp_path / "series", series=uid)[0].shape == (1, 16, 16, 5)
    assert read_dicom(tmp_path / "series", series="1.2.3.4.5")[0].shape == (1, 128, 128)
    index = [s.uid for s in scan_series(tmp_path / "series")].index("1.2.3.4.5")
    assert read_dicom(tmp_path / "series", series=index)[1].extra["series_uid"] == "1.2.3.4.5"
    assert "no series with UID 9.9" in _error(read_dicom, tmp_path / "series", series="9.9")


def test_slice_with_other_orientation_is_refused(tmp_path: Path) -> None:
    files = _copy_ct5n(tmp_path)
    _edit(files[2], ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    message = _error(read_dicom, tmp_path / "series")
    assert "slices are not parallel (mixed orientations)" in message and str(tmp_path / "series") in message
    # the same in real data: a radial MR angio and a localizer in pydicom's test series
    assert "not parallel" in _error(read_dicom, DICOMDIR_TESTS / "98892003" / "MR700")
    assert "not parallel" in _error(read_dicom, DICOMDIR_TESTS / "98892001" / "CT2N")


def test_missing_middle_slice_is_irregular_spacing(tmp_path: Path) -> None:
    files = _copy_ct5n(tmp_path)
    by_z = sorted(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    by_z[2].unlink()
    message = _error(read_dicom, tmp_path / "series")
    assert "irregular slice spacing (a missing slice?)" in message and "5 mm" in message and "2.5 mm" in message
    # real data: four CT slices, one far from the other three
    assert "irregular slice spacing" in _error(read_dicom, DICOMDIR_TESTS / "77654033" / "CT2")


def test_duplicate_positions_are_refused(samples: Path, tmp_path: Path) -> None:
    message = _error(read_dicom, samples / "ct_brain_series_fake_phi")  # two copies of one image
    assert "duplicate slice positions" in message and "ctbrain1.dcm" in message
    files = _copy_ct5n(tmp_path)
    shutil.copy(files[0], files[0].with_name("copy"))
    assert "duplicate slice positions" in _error(read_dicom, tmp_path / "series")


def test_inconsistent_image_size_is_refused(tmp_path: Path) -> None:
    files = _copy_ct5n(tmp_path)
    _edit(files[1], Rows=32)
    message = _error(read_dicom, tmp_path / "series")
    assert "inconsistent image size" in message and "16x16" in message and "32x16" in message


def test_truncated_file_is_one_error(tmp_path: Path) -> None:
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    message = _error(read_dicom, cut)
    assert "pixel data truncated" in message and "cut.dcm" in message
    cut.write_bytes(raw[:600])  # cut inside the header
    assert "truncated" in _error(read_dicom, cut)
    files = _copy_ct5n(tmp_path)  # one slice of a series cut short
    files[3].write_bytes(files[3].read_bytes()[:-100])
    message = _error(read_dicom, tmp_path / "series")
    assert "pixel data truncated" in message and files[3].name in message


# --- zip archives ----------------------------------------------------------------------------------------


def test_zip_of_a_series_reads_like_the_folder_and_cleans_up(tmp_path: Path, monkeypatch) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(CT5N.iterdir()):
            zf.write(f, f"PATIENT/STUDY/{f.name}")
        zf.writestr("PATIENT/README.txt", "not DICOM")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    array, meta = read_dicom(archive)
    expected, ref = read_dicom(CT5N)
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(meta.affine, ref.affine)
    assert meta.path == str(archive) and meta.extra["archive"] == str(archive)
    assert meta.extra["files"] == [str(archive / "PATIENT" / "STUDY" / Path(f).name) for f in ref.extra["files"]]
    assert list(scratch.iterdir()) == []  # the temporary folder is gone
    via_reader, _ = read_image(archive)  # the one image reader (registration uses it) reads the zip too
    np.testing.assert_array_equal(via_reader, expected)
    # errors inside the archive name the archive, not the temporary folder
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        for f in sorted(CT5N.iterdir())[:2] + sorted(CT5N.iterdir())[3:]:
            zf.write(f, f.name)
    message = _error(read_dicom, tmp_path / "bad.zip")
    assert "irregular slice spacing" in message and str(tmp_path / "bad.zip") in message
    assert str(scratch) not in message and list(scratch.iterdir()) == []


def test_zip_member_climbing_out_is_refused(tmp_path: Path) -> None:
    for member in ("../evil.dcm", "/abs/evil.dcm", "a/../../evil.dcm"):
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(get_testdata_file("CT_small.dcm"), "ok.dcm")
            zf.writestr(member, Path(get_testdata_file("CT_small.dcm")).read_bytes())
        message = _error(read_dicom, archive)
        assert "points outside the archive folder" in message and member in message
    assert not (tmp_path.parent / "evil.dcm").exists() and not (tmp_path / "evil.dcm").exists()


def test_zip_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * 5_000_000)  # 5 MB of zeros pack to a few kB
    assert archive.stat().st_size < 50_000
    message = _error(read_dicom, archive, max_unzipped_bytes=1_000_000)
    assert "zip bomb" in message and "bomb.zip" in message


def test_read_series_on_scanned_series(tmp_path: Path) -> None:
    [series] = scan_series(CT5N)
    assert series.files == sorted(series.files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    array, meta = read_series(series)
    assert array.shape == (1, 16, 16, 5) and meta.extra["files"] == [str(f) for f in series.files]
