"""Uploads: read within a size limit, parse multipart in memory, sniff, de-identify, store.

Nothing from a request becomes a path: the i-th uploaded file is stored as ``upload-<i:04d><suffix>``
(the suffix sniffed from its content by :func:`medlearn.data.images.sniff_suffix`, never taken from the
file name), a zip as the folder ``upload-<i:04d>/`` of ``member-<k:04d><suffix>`` files, all inside the
request's private temporary folder. A hyphen, not an underscore: ``NAME_0001`` is the nnU-Net channel-file
convention the image reader groups by (two uploads would become two channels of one case).

DICOM (a file, or a zip member) is parsed from memory and de-identified
(:func:`medlearn.data.deid.deidentify_dataset`, the PS3.15 Basic Profile, geometry kept) before its first
byte is written; files whose pixels usually show identifiers (burned-in annotation, ultrasound, screen
captures) are refused unless the request's options say ``"keep_burned_in": true``. The body itself is
held in memory only (Starlette's multipart parser would spool parts over 1 MB to a temporary file first).

Limits: the whole body (``max_bytes``, checked while reading: 413), the number of files, a zip's members
and unpacked size, and the voxels an image header declares (a small file may decode to gigabytes).
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from medlearn.serve.errors import bad_request, malformed, too_large, unsupported
from medlearn.serve.privacy import RequestPrivacy

#: formats the service reads, as :func:`sniff_suffix` names them; MetaImage / NRRD headers are refused
#: (they may name a data file elsewhere on the server), so are NumPy files
IMAGE_FORMATS = (".nii", ".nii.gz", ".dcm", ".png", ".jpg", ".tif", ".bmp", ".gif")
MAX_FILES = 64
MAX_PARTS = 80
MAX_ZIP_MEMBERS = 5000
MAX_VOXELS = 2 ** 28  # per image as its header declares it (1 GB of float32)
ZIP_EXPANSION = 4  # a zip may unpack to this many times the upload limit
FORM_FIELDS = ("files", "file", "options")
_DRIVE = re.compile(r"^[A-Za-z]:")


async def read_body(stream: AsyncIterator[bytes], declared: str | None, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``max_bytes`` (or declares more)."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise bad_request("Content-Length is not a number") from None
        if size > max_bytes:
            raise too_large(f"request of {_size(size)} is over the {_size(max_bytes)} upload limit (--max-upload-mb)")
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > max_bytes:
            raise too_large(f"request is over the {_size(max_bytes)} upload limit (--max-upload-mb)")
    return bytes(body)


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MB" if n >= 2 ** 20 else f"{n / 2 ** 10:.0f} kB"


@dataclass
class FormData:
    """A parsed multipart body: the uploaded files' bytes in order, and the ``options`` field (JSON)."""

    files: list[bytes] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def parse_multipart(body: bytes, content_type: str) -> FormData:
    """``multipart/form-data`` parsed in memory: file parts (field ``files`` or ``file``) and ``options``."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise unsupported("expected multipart/form-data with a boundary")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    finished = []

    def begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise malformed(f"more than {MAX_PARTS} form parts")
        parts.append({"headers": {}, "data": bytearray()})

    def header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def header_end() -> None:
        parts[-1]["headers"][bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    parser = MultipartParser(boundary, {"on_part_begin": begin, "on_header_field": header_field,
                                        "on_header_value": header_value, "on_header_end": header_end,
                                        "on_part_data": part_data, "on_end": lambda: finished.append(True)})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 -- python-multipart's own errors, whatever their type
        if hasattr(exc, "status"):
            raise
        raise malformed(f"malformed multipart body ({type(exc).__name__})") from None
    if not finished:
        raise malformed("incomplete multipart body (no closing boundary)")
    form = FormData()
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if name not in FORM_FIELDS:
            raise malformed(f"unknown form field (use {', '.join(FORM_FIELDS)})")
        if name == "options":
            form.options = _options(bytes(part["data"]))
        else:
            form.files.append(bytes(part["data"]))
    if len(form.files) > MAX_FILES:
        raise too_large(f"{len(form.files)} files in one request (limit {MAX_FILES})")
    return form


def _options(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        options = json.loads(raw)
    except ValueError:
        raise malformed("the 'options' field is not valid JSON") from None
    if not isinstance(options, dict):
        raise malformed("the 'options' field must be a JSON object")
    return options


@dataclass
class StoredUploads:
    """What :func:`store_uploads` wrote: one path per upload (a file, or a folder for a zip) and a
    summary per upload for the response (index, stored name, format, size; no client file name)."""

    paths: list[Path] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Context:
    folder: Path
    privacy: RequestPrivacy
    unzip_budget: int
    keep_burned_in: bool = False
    uid_map: dict[str, str] = field(default_factory=dict)  # one per request: a series keeps one study/series


def store_uploads(files: list[bytes], folder: Path, privacy: RequestPrivacy, max_bytes: int,
                  keep_burned_in: bool = False) -> StoredUploads:
    """Write each upload into ``folder`` (see the module docstring); identifiers found go to ``privacy``.
    ``keep_burned_in``: the client asked to accept DICOM whose pixels may show identifiers (they go
    back to that client only, in the viewer payload)."""
    if not files:
        raise bad_request("no file uploaded (send one or more files in the form field 'files')")
    ctx = _Context(folder, privacy, ZIP_EXPANSION * max_bytes, keep_burned_in)
    stored = StoredUploads()
    for i, data in enumerate(files, 1):
        where, stem = f"upload {i}", f"upload-{i:04d}"
        if not data:
            raise bad_request(f"{where} is empty")
        if _is_zip(data):
            path = _store_zip(data, where, folder / stem, ctx)
            stored.summary.append({"index": i, "stored_as": path.name, "format": "zip", "bytes": len(data),
                                   "members": sum(1 for _ in path.iterdir())})
        else:
            path = _store_file(data, where, folder, stem, ctx)
            stored.summary.append({"index": i, "stored_as": path.name, "format": _format(path), "bytes": len(data),
                                   "deidentified": path.suffix == ".dcm"})
        stored.paths.append(path)
    return stored


def _format(path: Path) -> str:
    return "nii.gz" if path.name.endswith(".nii.gz") else path.suffix.lstrip(".")


def _is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" and data[128:132] != b"DICM"


def _dicom_dataset(data: bytes, where: str):
    """The pydicom dataset in ``data`` if it is DICOM (preamble + DICM, or a bare stream with a SOP class
    or modality: the test :func:`sniff_suffix` applies), else None. Parsed from memory only."""
    import pydicom

    # (pydicom's warnings, which may quote values, are dropped by the service's hook in request threads;
    # warnings.catch_warnings is not thread-safe)
    if data[128:132] == b"DICM":
        try:
            return pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:  # noqa: BLE001 -- any parse failure of a file that says it is DICOM
            raise bad_request(f"{where}: not a readable DICOM file (truncated or damaged header)") from None
    try:
        probe = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 -- not DICOM at all
        return None
    if "SOPClassUID" not in probe and "Modality" not in probe:
        return None
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:  # noqa: BLE001 -- a bare DICOM stream with damaged pixel data
        raise bad_request(f"{where}: not a readable DICOM file (truncated or damaged)") from None


def _deidentified(ds, where: str, ctx: _Context) -> bytes:
    """``ds`` de-identified (Basic Profile, geometry kept, dates removed) and encoded; refused when its
    pixels probably show identifiers or an identifying string survives in the header."""
    from medlearn.data.deid import burned_in_reason, deidentify_dataset, phi_strings

    try:
        ctx.privacy.phi |= phi_strings(ds)  # reads every element: a truncated header fails here
        reason = burned_in_reason(ds)
    except Exception:  # noqa: BLE001 -- pydicom raises OSError, ValueError ... for damaged elements
        raise bad_request(f"{where}: not a readable DICOM file (truncated or damaged header)") from None
    if reason and not ctx.keep_burned_in:
        raise bad_request(f"{where}: refused: {reason}; to accept it, send the options "
                          '{"keep_burned_in": true} (the pixels are returned to you only)')
    _check_voxels(_dicom_voxels(ds), where)
    try:
        out = deidentify_dataset(ds, uid_map=ctx.uid_map, date_shift_days=None, keep_geometry=True,
                                 avoid=ctx.privacy.phi)
        buffer = io.BytesIO()
        out.save_as(buffer, enforce_file_format=True)
    except Exception:  # noqa: BLE001 -- a header pydicom cannot rewrite
        raise bad_request(f"{where}: DICOM header cannot be de-identified (damaged or unusual attributes)") from None
    encoded = buffer.getvalue()
    pixels = out.get("PixelData") if "PixelData" in out else None
    header = encoded.replace(pixels, b"", 1) if isinstance(pixels, bytes) and pixels else encoded
    if ctx.privacy.leaks(header):
        raise bad_request(f"{where}: an identifier survives de-identification; de-identify the file first "
                          "(`medlearn data deidentify`)")
    return encoded


def _dicom_voxels(ds) -> int:
    try:
        return int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 0


def _check_voxels(n: int, where: str, limit: int | None = None) -> None:
    limit = MAX_VOXELS if limit is None else limit
    if n > limit:
        raise too_large(f"{where}: image of {n / 1e6:.1f} million voxels is over the {limit / 1e6:.1f} million "
                        "voxel limit")


def _store_file(data: bytes, where: str, folder: Path, stem: str, ctx: _Context) -> Path:
    """One upload (or zip member) written as ``stem + sniffed suffix``; DICOM de-identified first."""
    from medlearn.data.images import sniff_suffix

    ds = _dicom_dataset(data, where)
    if ds is not None:
        path = folder / f"{stem}.dcm"
        path.write_bytes(_deidentified(ds, where, ctx))
        return path
    raw = folder / stem
    raw.write_bytes(data)  # not DICOM: no header with patient data; sniffed from the stored bytes
    suffix = sniff_suffix(raw)
    if suffix not in IMAGE_FORMATS or suffix == ".dcm":
        raw.unlink()
        named = {".nrrd": "NRRD", ".mha": "MetaImage", ".npy": "NumPy", ".npz": "NumPy archive"}.get(suffix or "")
        what = f"a {named} file, which the service does not read" if named else "not an image this service reads"
        raise unsupported(f"{where}: {what} (send NIfTI, DICOM, PNG, JPEG or TIFF, or a zip of a DICOM series)")
    path = raw.rename(folder / f"{stem}{suffix}")
    _check_voxels(_header_voxels(path, suffix), where, None if suffix in (".nii", ".nii.gz") else _raster_limit())
    return path


def _raster_limit() -> int:
    """Pillow's own decompression-bomb bound (its reader fails above twice that): refused here first."""
    from PIL import Image

    return min(MAX_VOXELS, int(Image.MAX_IMAGE_PIXELS or MAX_VOXELS))


def _header_voxels(path: Path, suffix: str) -> int:
    """Voxels the header declares (0 when it cannot be read: the model's reader reports that)."""
    import math

    try:
        if suffix in (".nii", ".nii.gz"):
            import nibabel

            return math.prod(nibabel.load(str(path)).shape)
        from PIL import Image

        with Image.open(path) as im:
            return im.width * im.height * getattr(im, "n_frames", 1)
    except Exception:  # noqa: BLE001 -- unreadable headers are reported by the reader, as InputError
        return 0


def _store_zip(data: bytes, where: str, folder: Path, ctx: _Context) -> Path:
    """A zip checked member by member (no ``..``, no absolute path, no link, bounded count and size),
    its DICOM and image members stored in ``folder`` (DICOM de-identified), in archive order."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise bad_request(f"{where}: not a readable zip archive (truncated?)") from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise too_large(f"{where}: zip holds {len(infos)} members (limit {MAX_ZIP_MEMBERS})")
    for k, info in enumerate(infos, 1):
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or _DRIVE.match(name) or ".." in PurePosixPath(name).parts:
            raise bad_request(f"{where}: zip member {k} has a path that climbs out of the archive ('..' or an "
                              "absolute path); refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise bad_request(f"{where}: zip member {k} is a symbolic link; refused")
        if info.flag_bits & 0x1:
            raise bad_request(f"{where}: zip member {k} is encrypted")
    if sum(info.file_size for info in infos) > ctx.unzip_budget:
        raise too_large(f"{where}: zip unpacks to more than {_size(ctx.unzip_budget)} (a zip bomb?)")
    folder.mkdir()
    stored = 0
    with archive:
        for k, info in enumerate(infos, 1):
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.is_dir() or not parts or parts[-1].startswith(".") or "__MACOSX" in parts \
                    or parts[-1].upper() == "DICOMDIR":
                continue
            try:
                with archive.open(info) as fh:
                    content = fh.read(ctx.unzip_budget + 1)  # sizes in the directory may lie
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError):
                raise bad_request(f"{where}: zip member {k} cannot be unpacked (damaged archive)") from None
            ctx.unzip_budget -= len(content)
            if ctx.unzip_budget < 0:
                raise too_large(f"{where}: zip unpacks to more than the limit (a zip bomb?)")
            if not content or _is_zip(content):
                continue  # empty members and nested archives are not read
            member = f"{where}, zip member {k}"
            try:
                _store_file(content, member, folder, f"member-{k:04d}", ctx)
            except Exception as exc:  # non-image members (a README) are skipped; refusals stand
                if getattr(exc, "status", None) == 415:
                    continue
                raise
            stored += 1
    if not stored:
        raise unsupported(f"{where}: the zip holds no DICOM or image file")
    return folder
