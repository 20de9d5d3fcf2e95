"""The one input collector every image task's ``predict`` (and the service) uses.

Inputs may be image files of any supported format (read by content, not suffix: DICOM files without an
extension are the usual PACS export), folders of images, a DICOM series folder (several series in one
folder: the user chooses one, or asks for each), a ``.zip`` of one series, an MSD / nnU-Net dataset
(``imagesTs/``, else ``imagesTr/``), a CSV with an ``image`` column (and optional ``patient_id``), or a
MedMNIST ``.npz`` (its arrays). Channel files ``CASE_0000.ext``, ``CASE_0001.ext`` form one case.

Arrays follow the package convention: channel-first ``(C, X, Y[, Z])`` in NIfTI voxel order (X = image
columns), as :func:`medlearn.data.images.read_image` returns and MONAI's ``LoadImage`` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.data.images import IMAGE_SUFFIXES, ImageMeta, image_suffix, read_image, sniff_suffix
from medlearn.errors import InputError

_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
ROI_FOLDERS = ("roiTs", "roiTr")


@dataclass
class ImageInput:
    """One image (case) to predict: its files (one per channel, or one holding all), or an array."""

    name: str
    files: list[Path] = field(default_factory=list)
    array: np.ndarray | None = None  # (C, *spatial), for inputs that are arrays (npz)
    roi: Path | None = None
    patient_id: str | None = None
    series: str | None = None  # the DICOM series chosen in a folder with several

    @property
    def is_dicom(self) -> bool:
        """A DICOM file, a series folder, or a zip of one series."""
        return bool(self.files) and (self.files[0].is_dir() or sniff_suffix(self.files[0]) in (".dcm", ".zip"))


def read_input(item: ImageInput) -> tuple[np.ndarray, ImageMeta | None]:
    """``(C, *spatial)`` float32 and its geometry (None for array inputs). DICOM goes through
    :func:`medlearn.data.dicom.read_dicom` (series checks: parallel slices, regular spacing)."""
    if item.array is not None:
        return np.asarray(item.array, np.float32), None
    if item.is_dicom:
        from medlearn.data.dicom import read_dicom

        array, meta = read_dicom(item.files[0], series=item.series)
        return array.astype(np.float32, copy=False), meta
    arrays, meta = [], None
    for f in item.files:
        array, m = read_image(f)
        meta = meta or m
        arrays.append(array)
    return (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)), meta


def _is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (
        image_suffix(path) in IMAGE_SUFFIXES or sniff_suffix(path) in IMAGE_SUFFIXES)


def collect_images(paths: Sequence[str | Path], n_channels: int = 1, roi: str | Path | None = None,
                   series: str | None = None, each_series: bool = False) -> list[ImageInput]:
    """Every image the ``paths`` name (see the module docstring), in a stable order.

    ``n_channels``: channel files per case (``_0000``, ``_0001``, ...). ``roi``: a folder of ROI masks named
    like the cases. ``series``/``each_series``: for a DICOM folder holding several series.
    """
    items: list[ImageInput] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "input not found", "give an image file, a folder of images, a DICOM series "
                             "folder or zip, a CSV with an 'image' column or an .npz")
        items += _collect_one(path, n_channels, series, each_series)
    if not items:
        raise InputError(", ".join(map(str, paths)), "no images found")
    if roi is not None:
        _attach_rois(items, Path(roi))
    return items


def _collect_one(path: Path, n_channels: int, series: str | None, each_series: bool) -> list[ImageInput]:
    from medlearn.data import msd

    suffix = image_suffix(path)
    if path.is_file() and suffix in (".csv", ".tsv"):
        return _from_table(path)
    if path.is_file() and (suffix == ".npz" or sniff_suffix(path) == ".npz"):
        return _from_npz(path)
    if path.is_file() and (suffix == ".zip" or sniff_suffix(path) == ".zip"):
        return [ImageInput(path.stem, [path], series=series)]
    if path.is_dir() and msd.is_msd_dataset(path):
        ds = msd.load_msd_dataset(path)
        return [ImageInput(c.name, list(c.images), roi=c.roi) for c in (ds.test or ds.training)]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        dicom = [f for f in files if sniff_suffix(f) == ".dcm"]
        if dicom:
            return _dicom_folder(path, series, each_series)
        images = [f for f in files if _is_image_file(f)]
        if not images:
            subfolders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            nested = [item for sub in subfolders for item in _collect_one(sub, n_channels, series, each_series)]
            if nested:
                return nested
            raise InputError(path, "folder holds no images", f"supported: {', '.join(IMAGE_SUFFIXES)}, DICOM")
        return _group_channels(images, n_channels)
    if path.is_file() and sniff_suffix(path) == ".dcm":
        return [ImageInput(_stem(path), [path])]
    if path.is_file() and _is_image_file(path):
        return _group_channels([path], n_channels, siblings=True)
    raise InputError(path, "not an image this medlearn reads", f"use {', '.join(IMAGE_SUFFIXES)}, DICOM, "
                     "a CSV with an 'image' column or an .npz")


def _dicom_folder(path: Path, series: str | None, each_series: bool) -> list[ImageInput]:
    """One input per DICOM series asked for: the only one, the chosen one, or each (``each_series``)."""
    from medlearn.data.dicom import scan_series

    found = scan_series(sorted(p for p in path.iterdir() if p.is_file()))
    if len(found) == 1:
        return [ImageInput(path.name, [path], series=found[0].uid)]
    if each_series:
        return [ImageInput(f"{path.name}_series{i}", [path], series=s.uid) for i, s in enumerate(found)]
    if series is not None:
        chosen = [s for i, s in enumerate(found) if series in (s.uid, str(i))]
        if not chosen:
            raise InputError(path, f"no series '{series}' here", "choose one of: " + _series_list(found))
        return [ImageInput(path.name, [path], series=chosen[0].uid)]
    raise InputError(path, f"holds {len(found)} DICOM series: " + _series_list(found),
                     "choose one with --series INDEX|UID, or predict each with --each-series")


def _series_list(found: list) -> str:
    # index, modality and counts only: UIDs and descriptions may identify a patient or an exam
    return "; ".join(f"[{i}] ({s.description})" for i, s in enumerate(found))


def _stem(path: Path) -> str:
    suffix = image_suffix(path)
    return path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.name


def _group_channels(files: list[Path], n_channels: int, siblings: bool = False) -> list[ImageInput]:
    """Files ``CASE_0000.ext``... grouped per case (one file = one case otherwise)."""
    groups: dict[str, dict[int, Path]] = {}
    for f in files:
        stem = _stem(f)
        match = _CHANNEL_RE.match(stem)
        # CASE_0000, CASE_0001 ... are channels of one case only for a model of several channels; for one
        # channel CASE_0000 is case CASE (the MSD naming) and scan_0001, scan_0002 stay two images
        if match and (n_channels > 1 or match["channel"] == "0000"):
            name, channel = match["case"], int(match["channel"])
        else:
            name, channel = stem, 0
        if siblings and match and n_channels > 1:
            for c in range(n_channels):
                sibling = f.with_name(f"{name}_{c:04d}{image_suffix(f)}")
                if sibling.exists():
                    groups.setdefault(name, {})[c] = sibling
            continue
        if channel in groups.get(name, {}):
            raise InputError(f, f"two files are case '{name}' channel {channel}", "rename one of them")
        groups.setdefault(name, {})[channel] = f
    out = []
    for name, channels in sorted(groups.items()):
        if n_channels > 1 and len(channels) not in (1, n_channels):
            raise InputError(next(iter(channels.values())).parent, f"case '{name}' has {len(channels)} channel "
                             f"files, the model expects {n_channels}", f"give {name}_0000 .. _{n_channels - 1:04d}")
        out.append(ImageInput(name, [channels[c] for c in sorted(channels)]))
    return out


def _attach_rois(items: list[ImageInput], roi_dir: Path) -> None:
    for item in items:
        candidates = sorted(roi_dir.glob(f"{item.name}.*")) if roi_dir.is_dir() else []
        if not candidates:
            raise InputError(roi_dir, f"no ROI mask for case '{item.name}'", f"add {item.name}.<ext> to the ROI folder")
        item.roi = candidates[0]


def default_roi(item: ImageInput) -> Path | None:
    """An MSD-style ROI mask beside the image folder (``../roiTs/CASE.ext`` or ``../roiTr/``)."""
    if item.roi is not None or not item.files or item.files[0].is_dir():
        return item.roi
    first = item.files[0]
    for folder in ROI_FOLDERS:
        candidate = first.parent.parent / folder / f"{item.name}{image_suffix(first)}"
        if candidate.exists():
            return candidate
    return None


def _from_table(path: Path) -> list[ImageInput]:
    from medlearn.data.classification import read_table, resolve_table_path

    df = read_table(path)
    if "image" not in df.columns:
        raise InputError(path, f"no 'image' column (columns: {', '.join(df.columns)})", "name the column 'image'")
    patients = df["patient_id"].fillna("").astype(str).tolist() if "patient_id" in df.columns else None
    out = []
    for row, rel in enumerate(df["image"]):
        file = resolve_table_path(path, rel, row)
        out.append(ImageInput(str(rel), [file], patient_id=patients[row] if patients else None))
    return out


def _from_npz(path: Path) -> list[ImageInput]:
    from medlearn.data.classification import load_medmnist_npz

    data = load_medmnist_npz(path, require_labels=False)
    return [ImageInput(f"{path.name}:{i}", array=a) for i, a in zip(data.ids, data.images, strict=True)]
