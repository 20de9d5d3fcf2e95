"""Read and write single images in the field's formats, keeping geometry.

Convention: arrays are channel-first, ``(C, X, Y)`` for 2D and ``(C, X, Y, Z)`` for 3D, in the
voxel order of NIfTI (nibabel). ``ImageMeta.affine`` maps voxel indices to RAS+ millimetres, as in
NIfTI, whatever the source format (SimpleITK's LPS direction is converted). 2D raster images (PNG,
JPEG, TIFF, GIF) are read with PIL and transposed to ``(C, X=width, Y=height)`` so a 2D image and a
3D slice index the same way; ``write_image`` transposes back.

Readers: nibabel (NIfTI), :mod:`medlearn.data.dicom` (pydicom: a DICOM file, series folder or zip, with
its geometry checked), SimpleITK (NRRD, MHA/MHD), PIL/tifffile (raster), numpy (``.npy``). Files are
read by content when their name says nothing (:func:`sniff_suffix`). Every failure is re-raised as
:class:`medlearn.errors.InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import locale
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.errors import InputError
from medlearn.io import atomic_path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".dicom")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")
NUMPY_SUFFIXES = (".npy",)
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES + RASTER_SUFFIXES + NUMPY_SUFFIXES

# NIfTI is RAS+, ITK/DICOM is LPS+: flip the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class ImageMeta:
    """Geometry and origin of an image. ``spacing`` is per spatial axis in mm (1.0 when unknown)."""

    path: str
    format: str
    spatial_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    affine: np.ndarray = field(repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def ndim(self) -> int:
        return len(self.spatial_shape)


def image_suffix(path: str | Path) -> str:
    """The format suffix of ``path`` (``.nii.gz`` counts as one), lower case; '' for a folder."""
    path = Path(path)
    if path.is_dir():
        return ""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


# DICOM first: its 128-byte preamble may itself look like a TIFF header (dual-format files)
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"DICM", 128, ".dcm"), (b"\x89PNG\r\n\x1a\n", 0, ".png"), (b"\xff\xd8\xff", 0, ".jpg"), (b"II*\x00", 0, ".tif"),
    (b"MM\x00*", 0, ".tif"), (b"GIF8", 0, ".gif"), (b"BM", 0, ".bmp"), (b"NRRD", 0, ".nrrd"),
    (b"\x93NUMPY", 0, ".npy"), (b"n+1\x00", 344, ".nii"), (b"ni1\x00", 344, ".nii"),
)


def sniff_suffix(path: str | Path) -> str | None:
    """The format of a file from its first bytes (not its name): a suffix of :data:`IMAGE_SUFFIXES`,
    ``.zip``/``.npz`` for zip archives, or None when the content is none of these.

    Needed for PACS exports (DICOM files without an extension) and mis-named uploads.
    """
    import gzip

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(352)
        if head[:2] == b"\x1f\x8b":  # gzip: a compressed NIfTI?
            with gzip.open(path, "rb") as fh:
                inner = fh.read(352)
            return ".nii.gz" if inner[344:348] in (b"n+1\x00", b"ni1\x00") else None
    except OSError:
        return None
    for magic, offset, suffix in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return suffix
    if head[:4] == b"PK\x03\x04":
        return ".npz" if image_suffix(path) == ".npz" else ".zip"
    if head.startswith(b"ObjectType") or b"ElementDataFile" in head:
        return ".mha"
    if len(head) > 132 and head[128:132] != b"DICM" and _looks_like_headless_dicom(path):
        return ".dcm"
    return None


def _looks_like_headless_dicom(path: Path) -> bool:
    """A DICOM file written without the 128-byte preamble (old exports): pydicom parses it and finds
    a SOP class or pixel data."""
    try:
        import pydicom

        ds = pydicom.dcmread(str(path), force=True, stop_before_pixels=True)
        return "SOPClassUID" in ds or "Modality" in ds
    except Exception:  # noqa: BLE001 -- anything unparsable is simply not DICOM
        return False


def is_image_path(path: str | Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return any(p.suffix.lower() in (".dcm", "") for p in path.iterdir() if p.is_file())
    return image_suffix(path) in IMAGE_SUFFIXES


def read_image(path: str | Path, dtype: np.dtype | type | None = np.float32) -> tuple[np.ndarray, ImageMeta]:
    """Read one image (a file, a folder holding one DICOM series, or a ``.zip`` of one series) as
    ``(C, *spatial)``; DICOM without an extension is recognised by its content.

    Raises InputError if the file is missing, unreadable, truncated or holds NaN/inf values.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found", "check the path or the table that names it")
    suffix = image_suffix(path)
    if path.is_file() and suffix not in IMAGE_SUFFIXES:
        suffix = sniff_suffix(path) or suffix  # read by content: a PACS export has no extension
    try:
        if path.is_dir() or suffix in (".dcm", ".dicom", ".zip"):  # a zip: of one DICOM series (PACS export)
            from medlearn.data.dicom import read_dicom  # geometry-checked series (parallel, regular slices)

            array, meta = read_dicom(path)
        elif suffix in NIFTI_SUFFIXES:
            array, meta = _read_nifti(path)
        elif suffix in ITK_SUFFIXES:
            array, meta = _read_itk(path)
        elif suffix in RASTER_SUFFIXES:
            array, meta = _read_raster(path)
        elif suffix in NUMPY_SUFFIXES:
            array, meta = _read_numpy(path)
        else:
            raise InputError(path, f"unsupported image format '{suffix or path.name}'",
                             f"use one of {', '.join(IMAGE_SUFFIXES)} or a DICOM series folder")
    except InputError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # library errors differ per format; all mean "cannot read"
        raise InputError(path, f"cannot read image ({type(exc).__name__}: {exc})".replace("\n", " "),
                         "the file may be truncated or not an image") from exc
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError(path, "image contains NaN or infinite values", "fix or exclude this image")
    return array, meta


def _read_nifti(path: Path) -> tuple[np.ndarray, ImageMeta]:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    spatial = data.shape[:3] if data.ndim >= 3 else data.shape
    if data.ndim == 4:  # NIfTI stores channels/time last
        array = np.moveaxis(data, -1, 0)
    else:
        array = data[None]
    zooms = tuple(float(z) for z in img.header.get_zooms()[: len(spatial)])
    meta = ImageMeta(str(path), "nifti", tuple(int(s) for s in spatial), zooms, np.asarray(img.affine, float))
    return np.asarray(array), meta


def _itk_to_array(image, path: Path, fmt: str) -> tuple[np.ndarray, ImageMeta]:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)  # (Z, Y, X[, C]) or (Y, X[, C])
    ndim = image.GetDimension()
    ncomp = image.GetNumberOfComponentsPerPixel()
    if ncomp > 1:
        arr = np.moveaxis(arr, -1, 0)
    else:
        arr = arr[None]
    arr = np.transpose(arr, (0, *range(ndim, 0, -1)))  # -> (C, X, Y[, Z])
    spacing = tuple(float(s) for s in image.GetSpacing())
    direction = np.asarray(image.GetDirection(), float).reshape(ndim, ndim)
    origin = np.asarray(image.GetOrigin(), float)
    lps = np.eye(4)
    lps[:ndim, :ndim] = direction * np.asarray(spacing)[None, :]
    lps[:ndim, 3] = origin
    if ndim == 3 and arr.shape[-1] == 1 and fmt == "dicom":
        arr = arr[..., 0]  # a single DICOM frame is a 2D image
        spacing = spacing[:2]
    meta = ImageMeta(str(path), fmt, tuple(arr.shape[1:]), spacing, _LPS_TO_RAS @ lps)
    return arr, meta


@contextlib.contextmanager
def keep_locale() -> Iterator[None]:
    """Restore the process locale after SimpleITK/GDCM, which set the C (ASCII) locale when they
    read or write DICOM and leave it so: every later ``open()`` without an encoding (here or in
    torch's compiler) would then fail on non-ASCII text."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _read_itk(path: Path) -> tuple[np.ndarray, ImageMeta]:
    import SimpleITK as sitk

    suffix = image_suffix(path)
    fmt = "dicom" if suffix in (".dcm", ".dicom") or suffix not in ITK_SUFFIXES else suffix.lstrip(".")
    with keep_locale():
        return _itk_to_array(sitk.ReadImage(str(path)), path, fmt)


def _read_raster(path: Path) -> tuple[np.ndarray, ImageMeta]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("P", "PA"):
            # a palette of (near-)grays is a grayscale image or mask (e.g. DRIVE's 2nd_manual GIFs use
            # (4,2,4)/(252,254,252)): one channel, not three
            im = im.convert("L" if _gray_palette(im) else "RGBA" if "transparency" in im.info else "RGB")
        if im.mode in ("I;16", "I;16B", "I;16L"):
            data = np.asarray(im, dtype=np.uint16)
        else:
            data = np.asarray(im)
    if data.ndim == 2:
        data = data[None]
    else:
        data = np.moveaxis(data, -1, 0)
        if data.shape[0] == 4:  # drop alpha
            data = data[:3]
    data = np.ascontiguousarray(np.swapaxes(data, 1, 2))  # (C, H, W) -> (C, X=W, Y=H)
    meta = ImageMeta(str(path), image_suffix(path).lstrip("."), tuple(data.shape[1:]), (1.0, 1.0), np.eye(4))
    return data, meta


def _gray_palette(im, tolerance: int = 8) -> bool:
    """True when every palette colour the image uses has R, G, B within ``tolerance`` of each other."""
    palette = im.getpalette()
    if not palette:
        return False
    colours = np.asarray(palette, dtype=np.int16).reshape(-1, 3)
    used = np.unique(np.asarray(im))
    used = used[used < len(colours)]
    return bool(np.all(np.ptp(colours[used], axis=1) <= tolerance))


def _read_numpy(path: Path) -> tuple[np.ndarray, ImageMeta]:
    data = np.load(path, allow_pickle=False)
    if data.ndim in (2, 3) and data.ndim == 2:
        data = data[None]
    meta = ImageMeta(str(path), "npy", tuple(data.shape[1:]), (1.0,) * (data.ndim - 1), np.eye(4))
    return data, meta


def write_image(path: str | Path, array: np.ndarray, like: ImageMeta | None = None) -> Path:
    """Write ``array`` (``(C, *spatial)`` or ``(*spatial)``) atomically, keeping ``like``'s geometry.

    The format follows ``path``'s suffix: NIfTI gets ``like.affine``; NRRD/MHA get spacing, origin
    and direction from it; PNG/TIFF are written as 8/16-bit rasters (no geometry).
    """
    path = Path(path)
    suffix = image_suffix(path)
    affine = like.affine if like is not None else np.eye(4)
    arr = np.asarray(array)
    if like is not None:
        ndim_spatial = like.ndim
    else:  # without geometry, a leading axis of <= 4 on a 3D/4D array is channels
        ndim_spatial = arr.ndim - 1 if arr.ndim in (3, 4) and arr.shape[0] <= 4 else arr.ndim
    if arr.ndim == ndim_spatial:
        arr = arr[None]
    with atomic_path(path) as tmp:
        if suffix in NIFTI_SUFFIXES:
            import nibabel as nib

            data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
            img = nib.Nifti1Image(data, affine)
            if like is not None and like.format == "nifti":
                img.header.set_zooms(tuple(like.spacing[: data.ndim]) + img.header.get_zooms()[len(like.spacing):])
            nib.save(img, str(tmp))
        elif suffix in RASTER_SUFFIXES:
            from PIL import Image

            data = np.swapaxes(arr, 1, 2)  # (C, X, Y) -> (C, H, W)
            data = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
            if data.dtype == bool:
                data = data.astype(np.uint8) * 255
            elif data.dtype not in (np.uint8, np.uint16):
                data = np.clip(data, 0, 255).astype(np.uint8)
            Image.fromarray(data).save(tmp, format=_pil_format(suffix))
        elif suffix in ITK_SUFFIXES:
            import SimpleITK as sitk

            nd = arr.ndim - 1
            data = np.transpose(arr, (0, *range(nd, 0, -1)))  # (C, X, Y, Z) -> (C, Z, Y, X)
            img = sitk.GetImageFromArray(data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1),
                                         isVector=data.shape[0] > 1)
            lps = np.linalg.inv(_LPS_TO_RAS) @ affine
            spacing = np.linalg.norm(lps[:nd, :nd], axis=0)
            img.SetSpacing([float(s) for s in spacing])
            img.SetOrigin([float(o) for o in lps[:nd, 3]])
            img.SetDirection([float(d) for d in (lps[:nd, :nd] / spacing[None, :]).ravel()])
            with keep_locale():
                sitk.WriteImage(img, str(tmp))
        elif suffix in NUMPY_SUFFIXES:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
        else:
            raise InputError(path, f"cannot write format '{suffix}'", f"use one of {', '.join(IMAGE_SUFFIXES)}")
    return path


def _pil_format(suffix: str) -> str:
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
            ".gif": "GIF", ".bmp": "BMP"}[suffix]
