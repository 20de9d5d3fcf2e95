"""The Medical Segmentation Decathlon / nnU-Net v2 raw dataset layout.

Layout (Antonelli et al., Nat. Commun. 2022; Isensee et al., Nat. Methods 2021)::

    DATASET/
      dataset.json          {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1},
                             "numTraining": 20, "file_ending": ".nii.gz"}
      imagesTr/CASE_0000.nii.gz   one file per input channel (_0000, _0001, ...)
      labelsTr/CASE.nii.gz        integer labels 0..K-1
      roiTr/CASE.nii.gz           optional region-of-interest mask (non-zero = inside), medlearn's
                                  extension: e.g. the field of view of a fundus photograph. Training
                                  loss and evaluation metrics only count voxels inside it.
      imagesTs/CASE_0000.nii.gz   optional test images (roiTs/ for their ROI masks)

As in nnU-Net, one RGB raster file (``CASE_0000.png``) may carry all channels when
``channel_names`` lists three ("R", "G", "B").

Public functions (the ``medlearn data`` CLI calls them): :func:`is_msd_dataset`, :func:`looks_like_msd`,
:func:`import_pairs`, :func:`check_msd_dataset`, :func:`fingerprint_msd_dataset`;
training code uses :func:`load_msd_dataset`, which raises :class:`InputError` for the first error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.data.images import IMAGE_SUFFIXES, ImageMeta, image_suffix, read_image, write_image
from medlearn.data.problems import Problem
from medlearn.errors import InputError
from medlearn.io import write_json

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
ROI_TRAIN_DIR = "roiTr"
ROI_TEST_DIR = "roiTs"
_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_RASTER_ENDINGS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".bmp")


@dataclass
class MSDCase:
    """One case: its channel files (in channel order), label and optional ROI mask."""

    name: str
    images: list[Path]
    label: Path | None = None
    roi: Path | None = None


@dataclass
class MSDDataset:
    """A parsed MSD dataset: ``dataset.json`` contents plus the training and test cases."""

    root: Path
    channel_names: dict[str, str]
    labels: dict[str, int]
    file_ending: str
    training: list[MSDCase] = field(default_factory=list)
    test: list[MSDCase] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return max(self.labels.values()) + 1

    @property
    def label_names(self) -> list[str]:
        by_value = {v: k for k, v in self.labels.items()}
        return [by_value.get(i, f"label_{i}") for i in range(self.num_classes)]


# ------------------------------------------------------------------------------------------------
# discovery

def is_msd_dataset(path: str | Path) -> bool:
    """True if ``path`` is a folder with an ``imagesTr/`` folder (``dataset.json`` may be missing or broken:
    ``check_msd_dataset`` then says so, rather than the folder being taken for another layout)."""
    path = Path(path)
    return path.is_dir() and (path / "imagesTr").is_dir()


MSD_MARKERS = ("dataset.json", "imagesTr", "labelsTr", "imagesTs", ROI_TRAIN_DIR)


def looks_like_msd(path: str | Path) -> bool:
    """True if ``path`` has any part of the MSD layout (``dataset.json``, ``imagesTr/``, ``labelsTr/`` ...):
    ``medlearn data check`` then checks it as one, so a missing ``imagesTr/`` is reported, not taken for
    another layout."""
    path = Path(path)
    return path.is_dir() and any((path / marker).exists() for marker in MSD_MARKERS)


def _stem(path: Path) -> str:
    suffix = image_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def _list_files(folder: Path, ending: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name.lower().endswith(ending.lower()))


def _read_dataset_json(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    source = root / "dataset.json"
    if not source.is_file():
        return None, [Problem(str(source), "dataset.json not found",
                              "create it with channel_names, labels, numTraining and file_ending")]
    try:
        meta = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [Problem(str(source), f"cannot parse dataset.json ({exc})", "fix the JSON syntax")]
    if not isinstance(meta, dict):
        return None, [Problem(str(source), "dataset.json must hold a JSON object")]
    problems = []
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if "channel_names" in missing and "modality" in meta:  # MSD v1 name for the same thing
        meta["channel_names"] = meta["modality"]
        missing.remove("channel_names")
    for key in missing:
        problems.append(Problem(str(source), f"missing key '{key}'", _KEY_HINTS[key]))
    if problems:
        return None, problems
    if not isinstance(meta["channel_names"], dict) or not meta["channel_names"]:
        problems.append(Problem(str(source), "'channel_names' must map channel index to name, e.g. {\"0\": \"CT\"}"))
    elif sorted(meta["channel_names"]) != [str(i) for i in range(len(meta["channel_names"]))]:
        problems.append(Problem(str(source), "'channel_names' keys must be 0, 1, ... without gaps"))
    labels = meta["labels"]
    if not isinstance(labels, dict) or not labels:
        problems.append(Problem(str(source), "'labels' must map names to integer values",
                                "e.g. {\"background\": 0, \"vessel\": 1}"))
    else:
        if isinstance(next(iter(labels)), str) and next(iter(labels)).isdigit() and all(
                isinstance(v, str) for v in labels.values()):
            # MSD v1 writes {"0": "background", "1": "tumour"}: accept it, inverted
            labels = {v: int(k) for k, v in labels.items()}
            meta["labels"] = labels
        values = list(labels.values())
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            problems.append(Problem(str(source), "'labels' values must be integers (region labels are not supported)",
                                    "use one integer per class"))
        else:
            if 0 not in values:
                problems.append(Problem(str(source), "'labels' has no background value 0", "add \"background\": 0"))
            if sorted(values) != list(range(len(values))):
                problems.append(Problem(str(source), f"label values {sorted(values)} are not consecutive",
                                        "renumber the classes 0, 1, 2, ... in dataset.json and the label files"))
    if not isinstance(meta["numTraining"], int) or isinstance(meta["numTraining"], bool):
        problems.append(Problem(str(source), "'numTraining' must be an integer"))
    ending = meta["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        problems.append(Problem(str(source), f"'file_ending' must be like \".nii.gz\", got {ending!r}"))
    elif ending.lower() not in IMAGE_SUFFIXES:
        problems.append(Problem(str(source), f"unsupported file_ending '{ending}'",
                                f"use one of {', '.join(IMAGE_SUFFIXES)}"))
    return (meta if not problems else None), problems


_KEY_HINTS = {
    "channel_names": "add e.g. \"channel_names\": {\"0\": \"CT\"}",
    "labels": "add e.g. \"labels\": {\"background\": 0, \"foreground\": 1}",
    "numTraining": "add \"numTraining\": <number of labelled cases>",
    "file_ending": "add e.g. \"file_ending\": \".nii.gz\"",
}


def _collect_cases(root: Path, images_dir: str, labels_dir: str | None, roi_dir: str, ending: str,
                   n_channels: int) -> tuple[list[MSDCase], list[Problem]]:
    problems: list[Problem] = []
    by_case: dict[str, dict[int, Path]] = {}
    for path in _list_files(root / images_dir, ending):
        match = _CHANNEL_RE.match(_stem(path))
        if not match:
            problems.append(Problem(str(path), "image file name lacks the channel suffix _0000",
                                    f"rename to {_stem(path)}_0000{ending}"))
            continue
        by_case.setdefault(match["case"], {})[int(match["channel"])] = path
    cases = []
    for name in sorted(by_case):
        channels = by_case[name]
        single_rgb = n_channels == 3 and list(channels) == [0] and ending.lower() in _RASTER_ENDINGS
        expected = [0] if single_rgb else list(range(n_channels))
        for extra in sorted(c for c in channels if c not in expected):
            problems.append(Problem(str(channels[extra]), f"channel file {extra} of case '{name}' is beyond the "
                                    f"{n_channels} channel(s) dataset.json lists",
                                    "add the channel to channel_names or remove the file"))
        missing = [c for c in expected if c not in channels]
        if missing:
            problems.append(Problem(str(root / images_dir / f"{name}_{missing[0]:04d}{ending}"),
                                    f"channel {missing[0]} of case '{name}' is missing",
                                    f"dataset.json lists {n_channels} channel(s)"))
            continue
        case = MSDCase(name, [channels[c] for c in expected])
        if labels_dir is not None:
            label = root / labels_dir / f"{name}{ending}"
            case.label = label if label.is_file() else None
        roi = root / roi_dir / f"{name}{ending}"
        case.roi = roi if roi.is_file() else None
        cases.append(case)
    return cases, problems


def _parse(path: Path) -> tuple[MSDDataset | None, list[Problem]]:
    path = Path(path)
    if not path.is_dir():
        return None, [Problem(str(path), "dataset folder not found", "check the path")]
    meta, problems = _read_dataset_json(path)
    if not (path / "imagesTr").is_dir():
        problems.append(Problem(str(path / "imagesTr"), "imagesTr/ folder not found",
                                "put the training images there (CASE_0000.ext, one file per channel)"))
    if meta is None or not (path / "imagesTr").is_dir():
        return None, problems
    ending = meta["file_ending"]
    n_channels = len(meta["channel_names"])
    training, p1 = _collect_cases(path, "imagesTr", "labelsTr", ROI_TRAIN_DIR, ending, n_channels)
    test, p2 = _collect_cases(path, "imagesTs", None, ROI_TEST_DIR, ending, n_channels)
    problems += p1 + p2
    image_cases = {c.name for c in training}
    for label in _list_files(path / "labelsTr", ending):
        if _stem(label) not in image_cases:
            problems.append(Problem(str(label), "label file has no matching image",
                                    f"add imagesTr/{_stem(label)}_0000{ending} or remove the label"))
    for case in training:
        if case.label is None:
            problems.append(Problem(str(case.images[0]), "image has no label file",
                                    f"add labelsTr/{case.name}{ending} or move the image to imagesTs/"))
    labelled = [c for c in training if c.label is not None]
    if not labelled:
        problems.append(Problem(str(path / "labelsTr"), "no labelled training cases", "add label files to labelsTr/"))
    if meta["numTraining"] != len(labelled):
        problems.append(Problem(str(path / "dataset.json"),
                                f"numTraining is {meta['numTraining']} but {len(labelled)} labelled cases were found",
                                "set numTraining to the number of label files", severity="warning"))
    dataset = MSDDataset(path, {str(k): str(v) for k, v in meta["channel_names"].items()},
                         dict(meta["labels"]), ending, labelled, test, meta)
    return dataset, problems


def load_msd_dataset(path: str | Path, read_check: bool = False) -> MSDDataset:
    """Parse ``path``; raise InputError for the first error (structure, and file contents if ``read_check``)."""
    problems = check_msd_dataset(path) if read_check else _parse(Path(path))[1]
    for problem in problems:
        if problem.severity == "error":
            raise InputError(problem.source, problem.problem, problem.fix or None)
    dataset, _ = _parse(Path(path))
    assert dataset is not None
    return dataset


# ------------------------------------------------------------------------------------------------
# checks

def check_msd_dataset(path: str | Path) -> list[Problem]:
    """Every problem found in the dataset at ``path`` (reads every file once).

    Finds: missing/wrong ``dataset.json`` keys, non-consecutive label values, images without the
    ``_0000`` suffix, label files without images (and the reverse), unreadable/corrupt files, label
    values outside ``labels`` (with a specific message for 0/255 masks), image/label/ROI shape or
    geometry mismatches, and empty masks (warning).
    """
    dataset, problems = _parse(Path(path))
    if dataset is None:
        return problems
    allowed = set(dataset.labels.values())
    for case in dataset.training + dataset.test:
        problems += _check_case(case, dataset, allowed)
    return problems


def _same_geometry(a: ImageMeta, b: ImageMeta) -> bool:
    if a.spatial_shape != b.spatial_shape:
        return False
    return bool(np.allclose(a.affine, b.affine, atol=1e-3, rtol=1e-4))


def _check_case(case: MSDCase, dataset: MSDDataset, allowed: set[int]) -> list[Problem]:
    problems: list[Problem] = []
    metas = []
    n_channels = 0
    for image in case.images:
        try:
            array, meta = read_image(image, dtype=None)
        except InputError as exc:
            problems.append(Problem(str(image), exc.problem, "replace the file"))
            continue
        n_channels += array.shape[0]
        metas.append(meta)
    if len(metas) != len(case.images):
        return problems
    if n_channels != len(dataset.channel_names):
        problems.append(Problem(str(case.images[0]), f"case has {n_channels} channels, dataset.json lists "
                                f"{len(dataset.channel_names)}", "fix channel_names or the image files"))
    for meta, image in zip(metas[1:], case.images[1:], strict=True):
        if not _same_geometry(metas[0], meta):
            problems.append(Problem(str(image), f"shape/geometry {meta.spatial_shape} differs from channel 0 "
                                    f"{metas[0].spatial_shape}", "resample all channels onto one grid"))
    for kind, target in (("label", case.label), ("ROI mask", case.roi)):
        if target is None:
            continue
        try:
            array, meta = read_image(target, dtype=None)
        except InputError as exc:
            problems.append(Problem(str(target), exc.problem, "replace the file"))
            continue
        if meta.spatial_shape != metas[0].spatial_shape:
            problems.append(Problem(str(target), f"{kind} shape {meta.spatial_shape} differs from image shape "
                                    f"{metas[0].spatial_shape}", "the mask must be on the image's voxel grid"))
            continue
        if not _same_geometry(metas[0], meta):
            problems.append(Problem(str(target), f"{kind} geometry (affine/spacing) differs from the image's",
                                    "resample the mask onto the image grid or fix its header"))
        if array.shape[0] != 1:
            problems.append(Problem(str(target), f"{kind} has {array.shape[0]} channels, expected 1",
                                    "save it as a single-channel (greyscale) file"))
            continue
        if kind == "label":
            problems += _check_label_values(target, array, allowed)
        elif not np.any(array):
            problems.append(Problem(str(target), "ROI mask is empty", "fix or remove it"))
    return problems


def _check_label_values(path: Path, array: np.ndarray, allowed: set[int]) -> list[Problem]:
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.mod(array, 1) == 0):
        return [Problem(str(path), "label file holds non-integer values", "save integer class labels")]
    values = {int(v) for v in np.unique(array)}
    problems = []
    extra = sorted(values - allowed)
    if extra:
        if values <= {0, 255}:
            problems.append(Problem(str(path), "label values are 0/255, expected 0/1",
                                    "binarise the mask (value > 0 -> 1), e.g. with `medlearn data import-pairs`"))
        else:
            problems.append(Problem(str(path), f"unexpected label value(s) {extra[:5]} (dataset.json labels: "
                                    f"{sorted(allowed)})", "renumber the labels or add them to dataset.json"))
    if values == {0}:
        problems.append(Problem(str(path), "mask is empty (background only)",
                                "check the file; empty cases teach the model little", severity="warning"))
    return problems


# ------------------------------------------------------------------------------------------------
# fingerprint

def fingerprint_msd_dataset(path: str | Path, max_samples_per_case: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Dataset statistics the planner uses (nnU-Net's fingerprint, Isensee et al. 2021).

    Returns counts, per-case shapes and spacings, their medians, per-channel intensity statistics
    (mean, std, percentiles 0.5/99.5 over voxels inside the ROI or label, sampled), the image dtype
    and the fraction of voxels per label (inside the ROI when given).
    """
    dataset = load_msd_dataset(path)
    rng = np.random.default_rng(seed)
    n_ch = len(dataset.channel_names)
    samples: list[list[np.ndarray]] = [[] for _ in range(n_ch)]
    shapes, spacings, counts = [], [], np.zeros(dataset.num_classes, np.int64)
    integer_8bit = True
    for case in dataset.training:
        image, meta = load_case_image(case)
        label, _ = read_image(case.label, dtype=None)
        roi = read_image(case.roi, dtype=None)[0][0] > 0 if case.roi else None
        shapes.append(list(meta.spatial_shape))
        spacings.append(list(meta.spacing))
        integer_8bit &= bool(image.min() >= 0 and image.max() <= 255 and np.all(np.mod(image, 1) == 0))
        lab = label[0].astype(np.int64)
        inside = lab[roi] if roi is not None else lab
        counts += np.bincount(np.clip(inside.ravel(), 0, dataset.num_classes - 1), minlength=dataset.num_classes)
        region = roi if roi is not None else (lab > 0 if np.any(lab > 0) else np.ones(lab.shape, bool))
        for c in range(n_ch):
            values = image[c][region]
            if values.size > max_samples_per_case:
                values = rng.choice(values, max_samples_per_case, replace=False)
            samples[c].append(values)
    intensity = {}
    for c, name in dataset.channel_names.items():
        values = np.concatenate(samples[int(c)]) if samples[int(c)] else np.zeros(1)
        intensity[c] = {"name": name, "mean": float(values.mean()), "std": float(values.std()),
                        "min": float(values.min()), "max": float(values.max()),
                        "percentile_00_5": float(np.percentile(values, 0.5)),
                        "percentile_99_5": float(np.percentile(values, 99.5))}
    fractions = counts / max(1, counts.sum())
    return {
        "name": dataset.raw.get("name", dataset.root.name),
        "num_training": len(dataset.training),
        "num_test": len(dataset.test),
        "num_channels": n_ch,
        "channel_names": dataset.channel_names,
        "labels": dataset.labels,
        "file_ending": dataset.file_ending,
        "ndim": len(shapes[0]),
        "has_roi": any(c.roi is not None for c in dataset.training),
        "shapes": shapes,
        "spacings": spacings,
        "median_shape": [float(v) for v in np.median(np.asarray(shapes, float), axis=0)],
        "median_spacing": [float(v) for v in np.median(np.asarray(spacings, float), axis=0)],
        "integer_8bit": integer_8bit,
        "intensity": intensity,
        "label_fractions": {name: float(fractions[value]) for name, value in dataset.labels.items()},
    }


def load_case_image(case: MSDCase) -> tuple[np.ndarray, ImageMeta]:
    """All channels of ``case`` as one float32 ``(C, *spatial)`` array, with channel 0's geometry."""
    arrays, metas = zip(*(read_image(p) for p in case.images), strict=True)
    return np.concatenate(arrays, axis=0), metas[0]


# ------------------------------------------------------------------------------------------------
# import from loose folders

_NUMBER_RE = re.compile(r"\d+")
# a pair needs a common run of at least this many characters (or the whole shorter name)
MIN_COMMON = 3


def _list_images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(folder, f"{what} folder not found", "check the path")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and image_suffix(p) in IMAGE_SUFFIXES)
    if not files:
        raise InputError(folder, f"no image files in the {what} folder", f"supported: {', '.join(IMAGE_SUFFIXES)}")
    return files


def _numbers(stem: str) -> list[int]:
    return [int(m) for m in _NUMBER_RE.findall(stem)]


def _name_score(image: str, other: str) -> tuple[int, int] | None:
    """How well two file stems name the same case, or None when they cannot.

    Numbers are one hint: the shorter name's numbers must start the longer one's (``21_training`` /
    ``21_manual1``: [21] / [21, 1]; ``1`` never pairs with ``10``). Then the longest run of characters the
    names share, and their common prefix, rank the candidates (``Image_01L`` shares ``Image_01L`` with
    ``Image_01L_1stHO`` but only ``Image_01`` with ``Image_01R_1stHO``).
    """
    from difflib import SequenceMatcher
    from os.path import commonprefix

    a, b = image.lower(), other.lower()
    na, nb = _numbers(a), _numbers(b)
    short, long = (na, nb) if len(na) <= len(nb) else (nb, na)
    if long[:len(short)] != short:
        return None
    common = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size
    if common < min(MIN_COMMON, len(a), len(b)):
        return None
    return common, len(commonprefix([a, b]))


def pair_by_name(images: list[Path], others: list[Path], what: str) -> dict[Path, Path]:
    """Each image's file among ``others`` (masks, ROI masks), by the longest common name stem.

    Every image must have one best match and every other file must be one image's best: a tie, a file
    two images claim, or a file left over stops with one line naming the files.
    """
    best: dict[Path, Path] = {}
    for image in images:
        scored = sorted(((score, other) for other in others
                         if (score := _name_score(_stem(image), _stem(other))) is not None),
                        key=lambda t: t[0], reverse=True)
        if not scored:
            continue
        if len(scored) > 1 and scored[1][0] == scored[0][0]:
            raise InputError(image, f"two {what} files match it equally ({scored[0][1].name} and {scored[1][1].name})",
                             "keep one file per case")
        best[image] = scored[0][1]
    claimed: dict[Path, Path] = {}
    for image, other in best.items():
        if other in claimed:
            raise InputError(other, f"{what} file matches two images ({claimed[other].name} and {image.name})",
                             "rename the files so each case has one name")
        claimed[other] = image
    for other in others:
        if other not in claimed:
            raise InputError(other, f"{what} has no matching image in {images[0].parent}",
                             f"add the image or remove the {what}")
    for image in images:
        if image not in best:
            raise InputError(image, f"image has no matching {what} in {others[0].parent}",
                             f"add the {what} or remove the image")
    return best


def _case_names(images: list[Path]) -> dict[Path, str]:
    """``case_021`` from the first number of each name when these are unique (DRIVE: ``21_training``), else the
    name itself (``Image_01L``), made safe for the layout."""
    firsts = [(_numbers(_stem(p)) or [None])[0] for p in images]
    if None not in firsts and len(set(firsts)) == len(firsts):
        width = max(3, len(str(len(images))))
        return {p: f"case_{n:0{width}d}" for p, n in zip(images, firsts, strict=True)}
    names = {p: re.sub(r"[^A-Za-z0-9_.-]+", "_", _stem(p)).strip("._") or "case" for p in images}
    if len(set(names.values())) != len(names):
        raise InputError(images[0].parent, "two images have the same name once made safe", "rename them")
    return names


def read_mask(path: Path) -> tuple[np.ndarray, ImageMeta]:
    """Read a mask as ``(1, *spatial)``; palette rasters (GIF, PNG mode P) as their grey intensity.

    ``read_image`` turns palette images into RGB colours; for a mask we want one value per pixel.
    (DRIVE's 2nd_manual stores near-black/near-white palette colours, which binarise correctly.)
    """
    if image_suffix(path) in _RASTER_ENDINGS:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode in ("P", "PA"):
                    data = np.asarray(im.convert("L")).T[None].copy()
                    meta = ImageMeta(str(path), image_suffix(path).lstrip("."), tuple(data.shape[1:]), (1.0, 1.0),
                                     np.eye(4))
                    return data, meta
        except OSError as exc:
            raise InputError(path, f"cannot read image ({exc})", "the file may be truncated or not an image") from exc
    array, meta = read_image(path, dtype=None)
    return array[:1], meta


def _binarise_if_two_valued(mask: np.ndarray, path: Path) -> np.ndarray:
    """Two-valued masks (0/255, 0/k) -> 0/1; masks that are already 0..K-1 are kept; anything else is an error."""
    values = np.unique(mask)
    if len(values) == 1:
        return (mask > 0).astype(np.uint8)
    if len(values) == 2:  # 0/255, 0/1, or palette near-black/near-white: the brighter value is foreground
        return (mask == values.max()).astype(np.uint8)
    ints = values.astype(np.int64)
    if np.all(values == ints) and list(ints) == list(range(len(ints))):
        return mask.astype(np.uint8 if ints.max() < 256 else np.uint16)
    raise InputError(path, f"mask has values {values[:6].tolist()}..., not 0/1, 0/255 or 0..K-1",
                     "convert it to consecutive class labels first")


def import_pairs(images: Path, masks: Path, out: Path, roi: Path | None = None,
                 channel_names: dict[str, str] | None = None, label_names: dict[str, int] | None = None,
                 echo: Callable[[str], None] = print) -> Path:
    """Build an MSD dataset at ``out`` from loose folders of images and masks (and ROI masks).

    Files are paired by the longest common name stem, numbers being one hint among others
    (:func:`pair_by_name`: ``21_training.tif`` <-> ``21_manual1.gif``, ``Image_01L.jpg`` <->
    ``Image_01L_1stHO.png``); the pairing is printed (``echo``) unless every pair has the same name.
    2D raster images are written as PNG (RGB kept in one ``_0000`` file), 3D images in their own format.
    Two-valued masks (0/255) become 0/1. The dataset is built in a temporary folder beside ``out`` and
    renamed into place at the end, so a failure leaves nothing; an existing dataset (or any non-empty
    folder) at ``out`` is never touched.
    """
    images, masks, out = Path(images), Path(masks), Path(out)
    if (out / "dataset.json").exists():
        raise InputError(out, "a dataset already exists here", "choose another output folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "the output folder is not empty", "choose a new folder for the dataset")
    image_files = _list_images(images, "image")
    pairs = pair_by_name(image_files, _list_images(masks, "mask"), "mask")
    roi_pairs = pair_by_name(image_files, _list_images(roi, "ROI mask"), "ROI mask") if roi is not None else {}
    if any(_stem(p) != _stem(pairs[p]) or (roi_pairs and _stem(p) != _stem(roi_pairs[p])) for p in image_files):
        for p in image_files:
            echo(f"paired {p.name} + {pairs[p].name}" + (f" + ROI {roi_pairs[p].name}" if roi_pairs else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write_pairs(building, image_files, pairs, roi_pairs, channel_names, label_names,
                     f"imported by medlearn from {images} and {masks}" + (f" (ROI: {roi})" if roi else ""), out.name)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return out


def _write_pairs(root: Path, image_files: list[Path], pairs: dict[Path, Path], roi_pairs: dict[Path, Path],
                 channel_names: dict[str, str] | None, label_names: dict[str, int] | None, description: str,
                 name: str) -> None:
    src_ending = image_suffix(image_files[0])
    ending = ".png" if src_ending in _RASTER_ENDINGS else src_ending
    names = _case_names(image_files)
    n_channels = None
    max_label = 1
    for path in sorted(image_files, key=lambda p: names[p]):
        case = names[path]
        image, meta = read_image(path, dtype=None)
        if n_channels is None:
            n_channels = image.shape[0]
        elif image.shape[0] != n_channels:
            raise InputError(path, f"has {image.shape[0]} channels, others have {n_channels}",
                             "convert all images to the same colour mode")
        mask, mask_meta = read_mask(pairs[path])
        if mask_meta.spatial_shape != meta.spatial_shape:
            raise InputError(pairs[path], f"mask shape {mask_meta.spatial_shape} differs from image shape "
                             f"{meta.spatial_shape}", "the mask must be on the image's grid")
        mask = _binarise_if_two_valued(mask[:1], pairs[path])
        max_label = max(max_label, int(mask.max()))
        if ending in _RASTER_ENDINGS or image.shape[0] == 1:
            write_image(root / "imagesTr" / f"{case}_0000{ending}", image, meta)
        else:
            for c in range(image.shape[0]):
                write_image(root / "imagesTr" / f"{case}_{c:04d}{ending}", image[c:c + 1], meta)
        write_image(root / "labelsTr" / f"{case}{ending}", mask, meta)
        if roi_pairs:
            roi_arr, roi_meta = read_mask(roi_pairs[path])
            if roi_meta.spatial_shape != meta.spatial_shape:
                raise InputError(roi_pairs[path], f"ROI shape {roi_meta.spatial_shape} differs from image shape "
                                 f"{meta.spatial_shape}", "the ROI must be on the image's grid")
            write_image(root / ROI_TRAIN_DIR / f"{case}{ending}", (roi_arr[:1] > 0).astype(np.uint8), meta)
    assert n_channels is not None
    if channel_names is None:
        channel_names = ({"0": "R", "1": "G", "2": "B"} if n_channels == 3 and ending in _RASTER_ENDINGS
                         else {str(c): f"channel_{c}" for c in range(n_channels)})
    if label_names is None:
        label_names = {"background": 0, **{("foreground" if max_label == 1 else f"label_{v}"): v
                                           for v in range(1, max_label + 1)}}
    write_json(root / "dataset.json", {
        "name": name,
        "description": description,
        "channel_names": channel_names,
        "labels": label_names,
        "numTraining": len(image_files),
        "file_ending": ending,
        "roi_folder": ROI_TRAIN_DIR if roi_pairs else None,
    })
