"""Read DICOM as scanners and PACS exports write it, and refuse what cannot be one volume.

Files are recognised by content (``is_dicom_file``), since PACS exports usually have no extension.
``scan_series`` groups files by SeriesInstanceUID from their headers alone; ``read_series`` checks the
geometry (parallel slices, regular spacing, no duplicate positions, one image size) before it decodes
any pixel and raises one :class:`medlearn.errors.InputError` line naming the folder or file otherwise.
SimpleITK/GDCM, which ``medlearn.data.images`` uses today, stacks such series silently.

Conventions are those of :mod:`medlearn.data.images`: arrays are channel-first, ``(C, X, Y)`` for one
frame and ``(C, X, Y, Z)`` for a series or a multi-frame file, X along the columns of the DICOM image
(left to right), Y along its rows (top to bottom), Z along the slice normal (row x column cosines).
``ImageMeta.affine`` maps voxel indices to RAS+ mm. For a regular series, a single file and a
multi-frame file with plane positions it equals SimpleITK's (checked in the tests), so NIfTI written
from either has the same geometry. Where this module differs on purpose: a gantry-tilted series keeps
its exact (sheared) slice step, where SimpleITK puts the slices on the normal; a multi-frame file
without per-frame positions takes SpacingBetweenSlices as its Z spacing (SimpleITK: 1 mm); 1-bit
(SEG) pixels stay 0/1 (SimpleITK: 0/255); YBR colour is converted to RGB (SimpleITK keeps YBR).
Pixel values get RescaleSlope/Intercept (or the Modality LUT) applied and are float32; colour images
keep their samples as channels and are not rescaled (their rescale tags, when present, describe the
grey source they were captured from, and SimpleITK ignores them too).

``ImageMeta.extra`` holds ``files`` (the sorted source files, e.g. for DICOM-SEG references),
``series_uid``, ``modality``, ``n_frames`` and, for multi-frame files, ``frame_numbers`` (1-based
frame numbers in Z order). No patient identifier is copied into the meta.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from medlearn.data.images import _LPS_TO_RAS, ImageMeta
from medlearn.errors import InputError

MAX_UNZIPPED_BYTES = 2 * 1024**3  # a zip of one series above 2 GB unpacked is more likely a zip bomb
MAX_ZIP_MEMBERS = 100_000
POSITION_TOLERANCE_MM = 0.01  # positions are written as DS strings rounded to ~1e-3..1e-6 mm
RELATIVE_SPACING_TOLERANCE = 0.01  # a step may differ by 1 % of the median step
ORIENTATION_TOLERANCE = 1e-3  # direction cosines are written with 4-6 decimals

# the first element of a DICOM stream without preamble: group 0000/0002/0004/0008, little or big endian
_FIRST_GROUPS = {b"\x00\x00", b"\x02\x00", b"\x04\x00", b"\x08\x00", b"\x00\x02", b"\x00\x04", b"\x00\x08"}
_SKIP_NAMES = {"DICOMDIR"}  # a media directory: patient records, no image
_MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass
class DicomSeries:
    """One series found by :func:`scan_series`. ``files`` are sorted along the slice normal."""

    uid: str
    files: list[Path]
    description: str
    modality: str
    is_multiframe: bool
    n_frames: int = 1
    headers: list = field(default_factory=list, repr=False, compare=False)  # pydicom datasets, no pixels


def is_dicom_file(path: str | Path) -> bool:
    """True when ``path`` holds DICOM, judged by content: the 128-byte preamble + ``DICM``, or (files
    without a preamble) a stream pydicom parses with ``force=True`` that has a SOPClassUID or PixelData."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    # cheap guard before a forced parse: a raw DICOM stream starts with a low group number
    if len(head) < 8 or head[:2] not in _FIRST_GROUPS:
        return False
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, defer_size=1024)
        return "SOPClassUID" in ds or "PixelData" in ds
    except Exception:  # anything pydicom cannot parse is not DICOM for us
        return False


def _list_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
                            and f.name.upper() not in _SKIP_NAMES)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(p, "file not found", "check the path")
    return files


def _read_header(path: Path):
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:
        raise InputError(path, f"cannot read DICOM header ({type(exc).__name__}: {exc})".replace("\n", " "),
                         "the file may be truncated; re-export it or remove it from the folder") from exc


def _floats(ds, keyword: str, n: int) -> np.ndarray | None:
    """``n`` floats from a (multi-valued) DS/FD attribute, or None when absent or malformed."""
    value = ds.get(keyword)
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return None
    values = [value] if isinstance(value, (str, bytes, int, float)) else list(value)
    try:
        arr = np.asarray([float(v) for v in values], float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.isfinite(arr).all() else None


def _orientation(ds, keyword: str = "ImageOrientationPatient") -> np.ndarray | None:
    """Row and column direction cosines, each scaled to unit length as GDCM does (exports often
    write them rounded, e.g. a column cosine of norm 0.9995 on a tilted CT)."""
    iop = _floats(ds, keyword, 6)
    if iop is None:
        return None
    row, col = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
    if row < 0.5 or col < 0.5:  # not a direction: treat as absent
        return None
    return np.concatenate([iop[:3] / row, iop[3:] / col])


def _n_frames(ds) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _normal(iop: np.ndarray) -> np.ndarray:
    """Unit slice normal: row cosine x column cosine."""
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def _describe(modality: str, series_description: str, n_files: int, n_frames: int) -> str:
    # SeriesDescription is free text a scanner operator may fill with identifying details (PS3.15 removes
    # it): messages show the modality and the counts only
    text = modality or "?"
    text += f", {n_files} file{'s' if n_files != 1 else ''}"
    if n_frames > n_files:
        text += f", {n_frames} frames"
    return text


def scan_series(paths: str | Path | Iterable[str | Path]) -> list[DicomSeries]:
    """Group the DICOM files among ``paths`` (files and/or folders, searched recursively) by series.

    Only headers are read (no pixel data). Non-DICOM files are ignored; no DICOM at all is an
    InputError. Series come sorted by SeriesNumber, then UID; files within one by position along the
    slice normal (InstanceNumber, then name, when a file has no position).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    candidates = _list_files(paths)
    groups: dict[str, list[tuple[Path, object]]] = defaultdict(list)
    for f in candidates:
        if not is_dicom_file(f):
            continue
        ds = _read_header(f)
        if sop_class_uid(ds) == _MEDIA_DIRECTORY_SOP_CLASS:
            continue  # a DICOMDIR under another name
        uid = str(ds.get("SeriesInstanceUID") or "")
        groups[uid or f"(no SeriesInstanceUID) {f.name}"].append((f, ds))
    if not groups:
        source = paths[0] if len(paths) == 1 else _common_folder(paths)
        raise InputError(source, "no DICOM file found", "point to a DICOM file, a series folder or a .zip of one")
    series = []
    for uid, members in groups.items():
        members = _sort_members(members)
        first = members[0][1]
        n_frames = sum(_n_frames(ds) for _, ds in members)
        series.append(DicomSeries(
            uid=uid,
            files=[f for f, _ in members],
            description=_describe(str(first.get("Modality") or ""), str(first.get("SeriesDescription") or "").strip(),
                                  len(members), n_frames),
            modality=str(first.get("Modality") or ""),
            is_multiframe=any(_n_frames(ds) > 1 for _, ds in members),
            n_frames=n_frames,
            headers=[ds for _, ds in members],
        ))

    def series_key(s: DicomSeries) -> tuple:
        number = s.headers[0].get("SeriesNumber")
        try:
            return (0, int(number), s.uid)
        except (TypeError, ValueError):
            return (1, 0, s.uid)

    return sorted(series, key=series_key)


def sop_class_uid(ds) -> str:
    """SOPClassUID, or the file meta's MediaStorageSOPClassUID (a DICOMDIR has only the latter)."""
    meta = getattr(ds, "file_meta", None)
    return str(ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else "") or "")


def _sort_members(members: list[tuple[Path, object]]) -> list[tuple[Path, object]]:
    iop = next((v for v in (_orientation(ds) for _, ds in members) if v is not None), None)
    normal = _normal(iop) if iop is not None else None

    def key(item: tuple[Path, object]) -> tuple:
        f, ds = item
        ipp = _floats(ds, "ImagePositionPatient", 3)
        try:
            instance = int(ds.get("InstanceNumber") or 0)
        except (TypeError, ValueError):
            instance = 0
        if ipp is not None and normal is not None:
            return (0, float(ipp @ normal), instance, f.name)
        return (1, 0.0, instance, f.name)

    return sorted(members, key=key)


def _common_folder(paths: list[Path]) -> Path:
    """The deepest folder holding all ``paths`` (absolute, links not resolved: it names the user's path)."""
    try:
        return Path(os.path.commonpath([os.path.abspath(p.parent if p.is_file() else p) for p in paths]))
    except ValueError:
        return paths[0]


def _series_source(series: DicomSeries) -> Path:
    if len(series.files) == 1:
        return series.files[0]
    return _common_folder(series.files)


@dataclass
class _Geometry:
    order: np.ndarray  # slice/frame indices in Z order
    lps: np.ndarray  # 4x4 voxel -> LPS mm
    spacing: tuple[float, ...]
    note: str = ""
    tilt_deg: float = 0.0


def _in_plane_spacing(ds, ps: np.ndarray | None) -> tuple[float, float]:
    """(X, Y) spacing: PixelSpacing is (row spacing, column spacing) = (Y, X); SimpleITK falls back to
    ImagerPixelSpacing (projection radiographs) and then 1 mm, and so do we."""
    if ps is None:
        ps = _floats(ds, "PixelSpacing", 2)
    if ps is None:
        ps = _floats(ds, "ImagerPixelSpacing", 2)
    if ps is None:
        return 1.0, 1.0
    return float(ps[1]), float(ps[0])


def _stack_geometry(positions: np.ndarray, iop: np.ndarray, xy_spacing: tuple[float, float],
                    names: list[str], source: Path, what: str) -> _Geometry:
    """Order parallel slices along their normal and check that the steps are one regular spacing."""
    normal = _normal(iop)
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    depth, pos = depth[order], positions[order]
    sorted_names = [names[i] for i in order]
    n = len(order)
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * xy_spacing[0]
    lps[:3, 1] = iop[3:] * xy_spacing[1]
    lps[:3, 3] = pos[0]
    steps = np.diff(depth)
    dup = np.flatnonzero(steps < POSITION_TOLERANCE_MM)
    if dup.size:
        i, k = int(dup[0]), len(set(dup.tolist()) | set((dup + 1).tolist()))
        raise InputError(source, f"duplicate {what} positions ({k} {what}s share a position with another, "
                                 f"e.g. {sorted_names[i]} and {sorted_names[i + 1]})",
                         "the series may hold copies, several echoes or time points: remove the copies or "
                         "split the series")
    median = float(np.median(steps))
    tol = max(RELATIVE_SPACING_TOLERANCE * median, POSITION_TOLERANCE_MM)
    bad = np.flatnonzero(np.abs(steps - median) > tol)
    if bad.size:
        i = int(bad[np.argmax(np.abs(steps[bad] - median))])
        raise InputError(source, f"irregular slice spacing (a missing slice?): steps {steps.min():.4g} to "
                                 f"{steps.max():.4g} mm (median {median:.4g} mm), e.g. {steps[i]:.4g} mm between "
                                 f"{sorted_names[i]} and {sorted_names[i + 1]}",
                         "re-export the complete series, or resample it to a regular grid")
    sweep = (pos[-1] - pos[0]) / (n - 1)
    expected = pos[0] + np.arange(n)[:, None] * sweep[None, :]
    off = np.linalg.norm(pos - expected, axis=1)
    if off.max() > tol:
        i = int(np.argmax(off))
        raise InputError(source, f"slice positions do not lie on one line ({sorted_names[i]} is {off[i]:.3g} mm "
                                 "off the line through the first and last)",
                         "the series may mix acquisitions; re-export it")
    # The third column is the mean step between slices: equal to SimpleITK's normal * spacing for an
    # ordinary series; for a gantry-tilted CT it stays exact (sheared) where SimpleITK would put the
    # slices on the normal.
    lps[:3, 2] = sweep
    tilt = float(np.degrees(np.arccos(np.clip(abs(sweep @ normal) / np.linalg.norm(sweep), 0.0, 1.0))))
    return _Geometry(order, lps, (xy_spacing[0], xy_spacing[1], float(np.linalg.norm(sweep))), tilt_deg=tilt)


def _check_same(values: list, names: list[str], source: Path, what: str, hint: str) -> None:
    first = values[0]
    for v, name in zip(values, names, strict=True):
        if not _equal(v, first):
            raise InputError(source, f"inconsistent {what}: {_fmt(first)} in {names[0]} but {_fmt(v)} in {name}", hint)


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if a is None or b is None:
            return a is b
        return a.shape == b.shape and bool(np.allclose(a, b, atol=1e-4, rtol=1e-4))
    return a == b


def _fmt(v) -> str:
    if isinstance(v, np.ndarray):
        return "\\".join(f"{x:g}" for x in v)
    if isinstance(v, tuple):
        return "x".join(str(x) for x in v)
    return str(v)


def read_series(series: DicomSeries) -> tuple[np.ndarray, ImageMeta]:
    """Read one series as ``(C, X, Y, Z)`` float32 (``(C, X, Y)`` for one single-frame file).

    A multi-frame (Enhanced) file is one volume, its frames ordered by PlanePositionSequence. Raises
    InputError for mixed orientations, irregular spacing, duplicate positions, inconsistent image sizes,
    unreadable pixel data, or a series of several multi-frame files.
    """
    if not series.headers:
        series.headers = [_read_header(f) for f in series.files]
    source = _series_source(series)
    if series.is_multiframe:
        if len(series.files) > 1:
            raise InputError(source, f"series holds {len(series.files)} multi-frame files",
                             "read each file on its own with read_dicom(<file>)")
        return _read_multiframe(series.files[0], series.headers[0], series)
    if len(series.files) == 1:
        return _read_single(series.files[0], series.headers[0], series)
    return _read_stack(series, source)


def _read_pixels(path: Path):
    """The full dataset and its decoded pixels; truncated or undecodable data is an InputError."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise InputError(path, f"cannot read DICOM file ({type(exc).__name__}: {exc})".replace("\n", " "),
                         "the file may be truncated; re-export it") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(path, f"no pixel data (truncated file, or not an image: {_sop_name(ds)})",
                         "point to an image series; DICOM-SEG/RTSTRUCT/SR objects are read by their own readers")
    short = pixel_data_shortfall(ds)
    if short is not None:
        raise InputError(path, f"pixel data truncated ({short[0]} of {short[1]} bytes)",
                         "the file was cut short (an interrupted copy or download?): re-export it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as exc:
        raise InputError(path, f"cannot decode pixel data ({type(exc).__name__}: {exc})".replace("\n", " "),
                         "the file may be truncated, or compressed with a codec no installed decoder handles "
                         "(pylibjpeg / python-gdcm add more)") from exc
    if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    return ds, arr


def pixel_data_shortfall(ds) -> tuple[int, int] | None:
    """``(bytes present, bytes expected)`` when uncompressed PixelData is shorter than Rows x Columns x
    frames x samples x BitsAllocated says (a file cut short), else None."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if "PixelData" not in ds or (syntax is not None and syntax.is_compressed):
        return None
    try:
        bits = int(ds.Rows) * int(ds.Columns) * _n_frames(ds) * _samples(ds) * int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    have, expected = len(ds.PixelData or b""), (bits + 7) // 8
    return (have, expected) if have < expected else None


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    return getattr(uid, "name", str(uid)) if uid else "no SOP class"


def _samples(ds) -> int:
    try:
        return int(ds.get("SamplesPerPixel") or 1)
    except (TypeError, ValueError):
        return 1


def _rescale(frame: np.ndarray, ds, groups: list | None = None) -> np.ndarray:
    """Stored values -> modality values (e.g. HU), float32. ``groups``: functional group items
    (per-frame first, then shared) that may carry PixelValueTransformationSequence."""
    if frame.ndim == 3 or _samples(ds) > 1:  # colour: no modality transform
        return frame.astype(np.float32)
    slope = intercept = None
    for item in groups or []:
        if item is not None and "PixelValueTransformationSequence" in item:
            t = item.PixelValueTransformationSequence[0]
            slope, intercept = t.get("RescaleSlope"), t.get("RescaleIntercept")
            break
    if slope is None and intercept is None:
        if "ModalityLUTSequence" in ds:
            from pydicom.pixels import apply_modality_lut

            return np.asarray(apply_modality_lut(frame, ds), np.float32)
        slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    out = frame.astype(np.float64) * slope + intercept if (slope != 1.0 or intercept != 0.0) else frame
    return np.asarray(out, np.float32)


def _to_channels(frame: np.ndarray) -> np.ndarray:
    """(rows, cols[, samples]) -> (C, X, Y)."""
    if frame.ndim == 2:
        return frame.T[None]
    return np.transpose(frame, (2, 1, 0))


def _meta(path: Path, shape: tuple[int, ...], geom: _Geometry, series: DicomSeries, files: list[Path],
          n_frames: int, ndim: int) -> ImageMeta:
    extra = {"files": [str(f) for f in files], "series_uid": series.uid, "modality": series.modality,
             "n_frames": n_frames}
    if geom.note:
        extra["geometry"] = geom.note
    if geom.tilt_deg > 0.01:
        extra["gantry_tilt_deg"] = round(geom.tilt_deg, 3)
    return ImageMeta(str(path), "dicom", tuple(int(s) for s in shape), tuple(float(s) for s in geom.spacing[:ndim]),
                     _LPS_TO_RAS @ geom.lps, extra)


def _plane_geometry(ds, iop: np.ndarray | None, ipp: np.ndarray | None, xy: tuple[float, float],
                    z: float) -> _Geometry:
    """Geometry of one plane: SimpleITK's for a single file (z from SpacingBetweenSlices, else 1)."""
    lps = np.eye(4)
    note = ""
    if iop is None or ipp is None:
        iop = np.array([1.0, 0, 0, 0, 1.0, 0])
        ipp = np.zeros(3) if ipp is None else ipp
        note = "no ImageOrientationPatient/ImagePositionPatient: identity orientation assumed"
    lps[:3, 0] = iop[:3] * xy[0]
    lps[:3, 1] = iop[3:] * xy[1]
    lps[:3, 2] = _normal(iop) * z
    lps[:3, 3] = ipp
    return _Geometry(np.arange(1), lps, (xy[0], xy[1], z), note)


def _z_spacing(ds) -> float:
    sbs = _floats(ds, "SpacingBetweenSlices", 1)
    return float(abs(sbs[0])) if sbs is not None and sbs[0] != 0 else 1.0


def _read_single(path: Path, header, series: DicomSeries) -> tuple[np.ndarray, ImageMeta]:
    ds, arr = _read_pixels(path)
    if arr.ndim == 3 and _samples(ds) == 1:  # a stray frame axis of length 1
        arr = arr[0]
    image = _to_channels(_rescale(arr, ds))
    geom = _plane_geometry(ds, _orientation(ds), _floats(ds, "ImagePositionPatient", 3),
                           _in_plane_spacing(ds, None), _z_spacing(ds))
    return np.ascontiguousarray(image), _meta(path, image.shape[1:], geom, series, [path], 1, 2)


def _read_stack(series: DicomSeries, source: Path) -> tuple[np.ndarray, ImageMeta]:
    headers, names = series.headers, [f.name for f in series.files]
    for h, name in zip(headers, names, strict=True):
        if "Rows" not in h or "Columns" not in h:
            raise InputError(source, f"{name} has no Rows/Columns (truncated header?)", "re-export the series")
    _check_same([(int(h.Rows), int(h.Columns)) for h in headers], names, source, "image size (Rows x Columns)",
                "the folder mixes images of different sizes: split the series or remove the odd files")
    _check_same([_samples(h) for h in headers], names, source, "SamplesPerPixel", "the series mixes grey and colour")
    iops = [_orientation(h) for h in headers]
    ipps = [_floats(h, "ImagePositionPatient", 3) for h in headers]
    missing = [n for n, a, b in zip(names, iops, ipps, strict=True) if a is None or b is None]
    if missing:
        raise InputError(source, f"{len(missing)} of {len(names)} files lack ImagePositionPatient/"
                                 f"ImageOrientationPatient (e.g. {missing[0]}): cannot stack them as a volume",
                         "read the files one by one with read_dicom(<file>)")
    for iop, name in zip(iops, names, strict=True):
        if np.abs(iop - iops[0]).max() > ORIENTATION_TOLERANCE:
            raise InputError(source, f"slices are not parallel (mixed orientations): {name} "
                                     f"[{_fmt(iop)}] vs {names[0]} [{_fmt(iops[0])}]",
                             "the series mixes planes (e.g. a localizer): remove those files or pick another series")
    spacings = [_in_plane_spacing(h, None) for h in headers]
    _check_same([np.asarray(sp) for sp in spacings], names, source, "PixelSpacing",
                "the series mixes pixel spacings; split it")
    geom = _stack_geometry(np.stack(ipps), iops[0], spacings[0], names, source, "slice")
    files = [series.files[i] for i in geom.order]
    slices = []
    for i in geom.order:
        ds, arr = _read_pixels(series.files[i])
        if arr.shape[:2] != (int(headers[0].Rows), int(headers[0].Columns)):
            raise InputError(series.files[i], f"pixel data of {arr.shape[:2]} does not match Rows x Columns "
                                              f"{int(headers[0].Rows)}x{int(headers[0].Columns)}", "re-export it")
        slices.append(_to_channels(_rescale(arr, ds)))
    volume = np.ascontiguousarray(np.stack(slices, axis=-1))
    return volume, _meta(source, volume.shape[1:], geom, series, files, len(files), 3)


def _group_value(item, seq_keyword: str, keyword: str):
    if item is None or seq_keyword not in item or not item.get(seq_keyword):
        return None
    return item.get(seq_keyword)[0].get(keyword)


def _read_multiframe(path: Path, header, series: DicomSeries) -> tuple[np.ndarray, ImageMeta]:
    n = _n_frames(header)
    shared = header.SharedFunctionalGroupsSequence[0] if header.get("SharedFunctionalGroupsSequence") else None
    per = list(header.PerFrameFunctionalGroupsSequence) if header.get("PerFrameFunctionalGroupsSequence") else []
    if per and len(per) != n:
        raise InputError(path, f"PerFrameFunctionalGroupsSequence has {len(per)} items for {n} frames",
                         "the file is inconsistent; re-export it")

    def frame_value(i: int, seq: str, kw: str, size: int) -> np.ndarray | None:
        for item in ((per[i] if per else None), shared):
            value = _group_value(item, seq, kw)
            if value is not None:
                return _floats({kw: value}, kw, size)
        return None

    names = [f"frame {i + 1}" for i in range(n)]
    ipps = [frame_value(i, "PlanePositionSequence", "ImagePositionPatient", 3) for i in range(n)]
    iops = [frame_value(i, "PlaneOrientationSequence", "ImageOrientationPatient", 6) for i in range(n)]
    iops = [None if o is None else _orientation({"ImageOrientationPatient": o}) for o in iops]
    pss = [frame_value(i, "PixelMeasuresSequence", "PixelSpacing", 2) for i in range(n)]
    have = [p is not None and o is not None for p, o in zip(ipps, iops, strict=True)]
    if any(have) and not all(have):
        raise InputError(path, f"{have.count(False)} of {n} frames lack PlanePositionSequence/"
                               "PlaneOrientationSequence", "the file is inconsistent; re-export it")
    if all(have):
        for iop, name in zip(iops, names, strict=True):
            if np.abs(iop - iops[0]).max() > ORIENTATION_TOLERANCE:
                raise InputError(path, f"slices are not parallel (mixed orientations): {name} [{_fmt(iop)}] vs "
                                       f"frame 1 [{_fmt(iops[0])}]", "read the stacks of this file separately")
        xy = [_in_plane_spacing(header, ps) for ps in pss]
        _check_same([np.asarray(v) for v in xy], names, path, "PixelSpacing", "the frames mix pixel spacings")
        geom = _stack_geometry(np.stack(ipps), iops[0], xy[0], names, path, "frame")
    else:
        # no per-frame geometry (e.g. stripped by an anonymiser): frames in stored order
        geom = _plane_geometry(header, _orientation(header),
                               _floats(header, "ImagePositionPatient", 3),
                               _in_plane_spacing(header, pss[0] if pss else None), _z_spacing(header))
        geom.order = np.arange(n)
        geom.note = "no per-frame PlanePositionSequence: frames in stored order, orientation " + (
            "from the top-level header" if "ImageOrientationPatient" in header else "assumed identity")
    ds, arr = _read_pixels(path)
    if arr.ndim == 2 or (arr.ndim == 3 and _samples(ds) > 1):  # pydicom drops a frame axis of length 1
        arr = arr[None]
    if arr.shape[0] != n:
        raise InputError(path, f"pixel data holds {arr.shape[0]} frames, NumberOfFrames says {n}",
                         "the file may be truncated; re-export it")
    frames = [_to_channels(_rescale(arr[i], ds, [per[i] if per else None, shared])) for i in geom.order]
    volume = np.ascontiguousarray(np.stack(frames, axis=-1))
    meta = _meta(path, volume.shape[1:], geom, series, [path], n, 3)
    meta.extra["frame_numbers"] = [int(i) + 1 for i in geom.order]
    return volume, meta


def _choose(found: list[DicomSeries], series: str | int | None, source: Path) -> DicomSeries:
    listing = "; ".join(f"[{i}] ({s.description})" for i, s in enumerate(found))
    if series is None:
        if len(found) == 1:
            return found[0]
        raise InputError(source, f"{len(found)} DICOM series in one folder: {listing}",
                         "choose one by index (or its SeriesInstanceUID)")
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool):
        if 0 <= int(series) < len(found):
            return found[int(series)]
        raise InputError(source, f"series index {series} out of range: {listing}", "pass series=<uid or index>")
    for s in found:
        if s.uid == str(series):
            return s
    raise InputError(source, f"no series with UID {series}: {listing}", "pass series=<uid or index>")


def read_dicom(path: str | Path, series: str | int | None = None, *,
               max_unzipped_bytes: int = MAX_UNZIPPED_BYTES) -> tuple[np.ndarray, ImageMeta]:
    """Read a DICOM file, a folder holding one series (``series=`` picks one of several), or a ``.zip``
    of one series, as ``(C, X, Y[, Z])`` float32 with its :class:`ImageMeta`.

    A zip is unpacked into a temporary folder that is removed afterwards; members that climb out of it
    (``..``, absolute paths, links) and archives over ``max_unzipped_bytes`` unpacked are refused. For
    a zip, ``meta.extra["files"]`` names the members as ``<archive>/<member>`` (they no longer exist on
    disk) and ``meta.extra["archive"]`` the archive.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found", "check the path")
    if path.is_file() and (path.suffix.lower() == ".zip" or (not is_dicom_file(path) and zipfile.is_zipfile(path))):
        with _unzipped(path, max_unzipped_bytes) as folder:
            try:
                array, meta = _read_folder(folder, series)
            except InputError as exc:
                raise InputError(_outside(exc.source, folder, path), exc.problem, exc.hint) from None
            meta.path = str(path)
            meta.extra["files"] = [str(path / Path(f).relative_to(folder)) for f in meta.extra["files"]]
            meta.extra["archive"] = str(path)
        return array, meta
    if path.is_dir():
        return _read_folder(path, series)
    if not is_dicom_file(path):
        raise InputError(path, "not a DICOM file (no DICM preamble and not parseable as DICOM)",
                         "point to a DICOM file, a series folder or a .zip of one")
    return read_series(_choose(scan_series([path]), series, path))


def _read_folder(folder: Path, series: str | int | None) -> tuple[np.ndarray, ImageMeta]:
    found = scan_series([folder])
    array, meta = read_series(_choose(found, series, folder))
    meta.extra["n_series"] = len(found)
    return array, meta


def _outside(source: str | None, folder: Path, archive: Path) -> str:
    """An error's source inside the temporary folder, renamed to the archive member."""
    if source is None:
        return str(archive)
    try:
        rel = Path(source).resolve().relative_to(folder.resolve())
    except ValueError:
        return source
    return str(archive) if str(rel) == "." else str(archive / rel)


@contextlib.contextmanager
def _unzipped(archive: Path, max_bytes: int) -> Iterator[Path]:
    """Unpack ``archive`` into a temporary folder after checking every member; removed on exit."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(archive, f"not a readable zip archive ({exc})", "the archive may be truncated") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise InputError(archive, f"archive has {len(infos)} members (limit {MAX_ZIP_MEMBERS})",
                             "unpack it yourself and pass the folder")
        members = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise InputError(archive, f"archive member '{info.filename}' points outside the archive folder",
                                 "refusing to unpack it; re-create the archive with relative paths")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(archive, f"archive member '{info.filename}' is a symbolic link",
                                 "refusing to unpack it; re-create the archive without links")
            if info.flag_bits & 0x1:
                raise InputError(archive, f"archive member '{info.filename}' is encrypted", "unpack it yourself")
            if not info.is_dir():
                members.append((info, parts))
        declared = sum(info.file_size for info, _ in members)
        if declared > max_bytes:
            raise InputError(archive, f"archive unpacks to {declared / 1e9:.2f} GB, over the "
                                      f"{max_bytes / 1e9:.2f} GB limit (a zip bomb?)",
                             "unpack it yourself and pass the folder")
        tmp = Path(tempfile.mkdtemp(prefix="medlearn-dicom-"))
        try:
            try:
                _extract(zf, members, tmp, archive, max_bytes)
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
                raise InputError(archive, f"cannot unpack archive ({type(exc).__name__}: {exc})",
                                 "the archive may be truncated") from exc
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _extract(zf: zipfile.ZipFile, members: list, tmp: Path, archive: Path, max_bytes: int) -> None:
    written = 0
    for info, parts in members:
        target = tmp.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:  # the declared sizes lied
                    raise InputError(archive, f"archive unpacks to more than {max_bytes / 1e9:.2f} GB (a zip bomb?)",
                                     "unpack it yourself and pass the folder")
                dst.write(chunk)
