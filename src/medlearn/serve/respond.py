"""Responses: plain JSON (numpy converted, non-finite numbers as null) and output files embedded as
base64 with their name and media type, so the service stores nothing after a request."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from medlearn.serve.errors import ServiceError
from medlearn.serve.privacy import RequestPrivacy

MEDIA_TYPES = {".csv": "text/csv", ".json": "application/json", ".txt": "text/plain", ".sdf": "chemical/x-mdl-sdfile",
               ".smi": "text/plain", ".png": "image/png", ".jpg": "image/jpeg", ".tif": "image/tiff",
               ".nii": "application/octet-stream", ".nii.gz": "application/gzip", ".dcm": "application/dicom",
               ".html": "text/html", ".onnx": "application/octet-stream"}
TEXT_TYPES = ("text/", "application/json", "chemical/")
#: viewer fields holding base64 pixels (never searched for text, never scrubbed)
PIXEL_FIELDS = ("image", "overlay")


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: numpy scalars and arrays to numbers and lists, NaN/inf to None, a path
    to its file name only (a server path is nobody's business), anything else to its text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return value.name
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def dumps(payload: Any) -> bytes:
    return json.dumps(jsonable(payload), separators=(",", ":"), allow_nan=False).encode("utf-8")


def media_type(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return MEDIA_TYPES[".nii.gz"]
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def embed_files(files: list[Path], workdir: Path, privacy: RequestPrivacy) -> list[dict[str, Any]]:
    """Each output file as ``{"name", "media_type", "bytes", "data"}`` (base64). A file outside the
    request's working folder is a bug of the model, never served."""
    out = []
    root = workdir.resolve()
    for path in files:
        path = Path(path)
        try:
            path.resolve().relative_to(root)
        except ValueError:
            raise ServiceError(500, "internal error: the model returned a file outside its working folder") from None
        if not path.is_file():
            raise ServiceError(500, "internal error: the model returned a file that does not exist")
        data = path.read_bytes()
        kind = media_type(path)
        if kind.startswith(TEXT_TYPES) and privacy.leaks(data):
            data = privacy.scrub(data.decode("utf-8", "replace")).encode("utf-8")
        out.append({"name": privacy.scrub(path.name), "media_type": kind, "bytes": len(data),
                    "data": base64.b64encode(data).decode("ascii")})
    return out


def scrub_viewer(viewer: list[dict[str, Any]], privacy: RequestPrivacy) -> list[dict[str, Any]]:
    """Viewer payloads with their text fields (name, labels) scrubbed; pixel fields untouched."""
    return [{k: (v if k in PIXEL_FIELDS else privacy.scrub_value(jsonable(v))) for k, v in item.items()}
            for item in viewer]
