"""Registration datasets: Learn2Reg ``dataset.json``, a CSV of pairs, or atlas mode -> checked pairs.

Three layouts give a :class:`RegistrationDataset` of :class:`PairSource` (paths only); :func:`load_pair`
reads one into a :class:`RegistrationPair` (arrays on the fixed image's grid):

* **Learn2Reg** (Hering et al. 2022, IEEE TMI 42:697; the challenge's ``<TASK>_dataset.json``): keys
  ``training`` (per-image entries ``{"image", "label"?, "mask"?, "keypoints"?}``), ``test``,
  ``pairings`` (``"paired"``: pairs in ``training_paired_images``, e.g. inspiration/expiration of one
  patient, fixed ``*_0000``, moving ``*_0001``; ``"unpaired"``: any two training images, inter-subject),
  ``registration_val`` / ``registration_test`` (lists of ``{"fixed", "moving"}``), ``modality``
  (``{"0": "MR", "1": "CT"}``, the ``_000k`` file-name suffix picks the entry), ``tensorImageShape``
  (``{"0": [X, Y, Z]}``, checked). Paths are relative to the json's folder (``./`` optional).
  Keypoints are Learn2Reg CSVs: one ``x,y,z`` row per point in *voxel* coordinates of that image,
  fixed and moving rows corresponding. Read leniently: missing optional keys, ``label``/``seg``
  aliases, image entries given as plain strings, labels found by ``imagesTr`` -> ``labelsTr``.
* **CSV** with columns ``fixed,moving`` and optional ``fixed_label,moving_label``, ``fixed_mask,
  moving_mask``, ``fixed_keypoints,moving_keypoints``, ``displacement`` (a known field written by
  :func:`medlearn.tasks.register.io.write_displacement_field`), ``fixed_modality,moving_modality``
  (e.g. ``MR``/``CT``: two different ones make the pair multi-modal), ``split`` (``train``/``val``/``test``)
  and ``name``; paths relative to the CSV.
* **atlas**: every image (a folder, or a CSV with an ``image`` column and an optional ``label`` one)
  registered to one fixed image (:func:`atlas_pairs`).

:func:`load_pair` resamples the moving image (linear) and its labels (nearest neighbour) onto the
fixed image's grid through both world affines when the grids differ (``pair.resampled`` records it,
keypoints are mapped too), and raises :class:`~medlearn.errors.InputError` — one line naming the file
— for: images of different dimensionality, missing files, an empty label map, a label map in one image
and not the other, label maps without a common structure, keypoint counts that differ, an image whose
shape contradicts ``tensorImageShape``, and a pair that does not overlap at all in world space.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlearn.data.images import ImageMeta, read_image
from medlearn.errors import InputError

__all__ = ["PairSource", "RegistrationDataset", "RegistrationPair", "atlas_pairs", "find_learn2reg_json",
           "load_pair", "read_keypoints", "read_learn2reg", "read_pairs_csv", "read_registration_data",
           "spatial_affine"]

_SUFFIX = re.compile(r"_(\d{4})$")


@dataclass(frozen=True)
class PairSource:
    """Paths of one pair (nothing read yet). ``source`` is the file that named them (for messages)."""

    name: str
    fixed: Path
    moving: Path
    source: str = ""
    fixed_label: Path | None = None
    moving_label: Path | None = None
    fixed_mask: Path | None = None
    moving_mask: Path | None = None
    fixed_keypoints: Path | None = None
    moving_keypoints: Path | None = None
    displacement: Path | None = None
    fixed_modality: str | None = None
    moving_modality: str | None = None
    expected_shape: tuple[int, ...] | None = None


@dataclass
class RegistrationDataset:
    """The pairs of one split, and what the layout says about them."""

    name: str
    layout: str  # "learn2reg", "csv" or "atlas"
    pairs: list[PairSource]
    modalities: dict[str, str] = field(default_factory=dict)
    pairing: str = "paired"  # "paired", "unpaired" or "atlas"
    tensor_shape: tuple[int, ...] | None = None
    #: per pair "train", "val", "test" or "" (the layout's own split: Learn2Reg's registration_val, a CSV's
    #: ``split`` column), None when the layout names none
    splits: list[str] | None = None
    #: structure id -> name (Learn2Reg ``labels``), when the layout names them
    label_names: dict[int, str] = field(default_factory=dict)

    @property
    def same_modality(self) -> bool:
        """True when every fixed and moving image has the same (or no stated) modality."""
        names = {m for p in self.pairs for m in (p.fixed_modality, p.moving_modality) if m}
        return len(names) <= 1

    @property
    def has_labels(self) -> bool:
        return bool(self.pairs) and all(p.fixed_label is not None for p in self.pairs)


@dataclass
class RegistrationPair:
    """One pair read and checked, everything on the fixed image's voxel grid.

    Images ``(C, *S)`` float32, labels ``(1, *S)`` int32, masks ``(1, *S)`` bool, keypoints ``(N, ndim)``
    float64 voxel coordinates of the fixed grid (row ``k`` of both is one anatomical point),
    ``known_ddf (ndim, *S)`` the true field in voxels (:mod:`.transforms` convention: the fixed voxel
    ``x`` lies at ``x + u(x)`` in the moving image). ``moving_meta`` keeps the moving file's own geometry;
    ``resampled`` says whether the moving image had to be resampled onto the fixed grid.
    """

    name: str
    fixed: np.ndarray
    moving: np.ndarray
    fixed_meta: ImageMeta
    moving_meta: ImageMeta
    fixed_label: np.ndarray | None = None
    moving_label: np.ndarray | None = None
    fixed_mask: np.ndarray | None = None
    moving_mask: np.ndarray | None = None
    fixed_keypoints: np.ndarray | None = None
    moving_keypoints: np.ndarray | None = None
    known_ddf: np.ndarray | None = None
    resampled: bool = False
    fixed_modality: str | None = None
    moving_modality: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ndim(self) -> int:
        return self.fixed.ndim - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.fixed.shape[1:])

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.fixed_meta.spacing[: self.ndim])

    @property
    def label_ids(self) -> list[int]:
        """Foreground label ids present in both label maps (the structures Dice is computed on)."""
        if self.fixed_label is None or self.moving_label is None:
            return []
        both = set(np.unique(self.fixed_label).tolist()) & set(np.unique(self.moving_label).tolist())
        return sorted(int(v) for v in both if v != 0)


# -- geometry ------------------------------------------------------------------------------------------------
def spatial_affine(meta: ImageMeta) -> np.ndarray:
    """The ``(ndim + 1, ndim + 1)`` voxel -> world (RAS+ mm) affine of ``meta`` (2D: its in-plane part)."""
    n = meta.ndim
    a = np.asarray(meta.affine, float)
    if n == 3:
        return a.copy()
    idx = [*range(n), 3]
    out = a[np.ix_(idx, idx)]
    out[n] = [0.0] * n + [1.0]
    return out


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    """The voxel-box corners ``(2**ndim, ndim)``: voxel centres are integers, the box is +-0.5 around them."""
    lo_hi = [(-0.5, n - 0.5) for n in shape]
    grids = np.meshgrid(*lo_hi, indexing="ij")
    return np.stack([g.ravel() for g in grids], 1)


def _world_box(meta: ImageMeta) -> tuple[np.ndarray, np.ndarray]:
    a = spatial_affine(meta)
    c = _corners(tuple(meta.spatial_shape))
    w = c @ a[:-1, :-1].T + a[:-1, -1]
    return w.min(0), w.max(0)


def _same_grid(a: ImageMeta, b: ImageMeta) -> bool:
    return tuple(a.spatial_shape) == tuple(b.spatial_shape) and np.allclose(spatial_affine(a), spatial_affine(b),
                                                                           atol=1e-4)


def _fixed_to_moving(fixed: ImageMeta, moving: ImageMeta) -> np.ndarray:
    """Homogeneous matrix mapping fixed voxel indices to moving voxel indices (through world space)."""
    return np.linalg.inv(spatial_affine(moving)) @ spatial_affine(fixed)


def _resample(array: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    from scipy import ndimage

    out = np.empty((array.shape[0], *shape), dtype=np.float32 if order else array.dtype)
    n = len(shape)
    for c in range(array.shape[0]):
        out[c] = ndimage.affine_transform(array[c], matrix[:n, :n], offset=matrix[:n, n], output_shape=shape,
                                          order=order, mode="constant", cval=0.0)
    return out


def _inside_fraction(matrix: np.ndarray, fixed_shape: tuple[int, ...], moving_shape: tuple[int, ...]) -> float:
    """Fraction of fixed voxels (on a coarse lattice) whose moving position lies inside the moving image."""
    n = len(fixed_shape)
    axes = [np.linspace(0, s - 1, min(s, 32)) for s in fixed_shape]
    pts = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], 1)
    mapped = pts @ matrix[:n, :n].T + matrix[:n, n]
    inside = np.all((mapped >= -0.5) & (mapped <= np.asarray(moving_shape) - 0.5), axis=1)
    return float(inside.mean())


# -- readers -------------------------------------------------------------------------------------------------
def read_keypoints(path: Path, ndim: int) -> np.ndarray:
    """A Learn2Reg keypoint CSV: ``(N, ndim)`` voxel coordinates, one point per row (header optional)."""
    if not path.exists():
        raise InputError(path, "keypoint file not found", "check the path or the table that names it")
    rows: list[list[float]] = []
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, f"cannot read keypoints ({exc})") from exc
    for k, line in enumerate(text.splitlines()):
        cells = [c for c in re.split(r"[,;\s]+", line.strip()) if c]
        if not cells:
            continue
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            if k == 0 and not rows:  # a header
                continue
            raise InputError(path, f"line {k + 1} is not numbers: '{line.strip()[:60]}'",
                             "keypoints are rows of x,y[,z] voxel coordinates") from None
    if not rows:
        raise InputError(path, "keypoint file has no points")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths.pop() != ndim:
        raise InputError(path, f"keypoints must have {ndim} coordinates per row", "rows of x,y[,z] voxel coordinates")
    pts = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(pts).all():
        raise InputError(path, "keypoints contain NaN or infinite values")
    return pts


def _check_exists(path: Path | None, source: str, what: str) -> None:
    if path is not None and not path.exists():
        raise InputError(path, f"{what} not found (named in {source})", "check the path; paths are relative to "
                         "the file that lists them")


def _read_label(path: Path, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr, _ = read_image(path, dtype=None)
    if tuple(arr.shape[1:]) != tuple(shape):
        raise InputError(path, f"{what} has shape {tuple(arr.shape[1:])}, its image {tuple(shape)}",
                         "a label map must be on its image's grid")
    if arr.shape[0] != 1:
        arr = arr[:1]
    if np.issubdtype(arr.dtype, np.floating):
        if not np.allclose(arr, np.round(arr)):
            raise InputError(path, f"{what} holds non-integer values", "label maps hold integer structure ids")
        arr = np.round(arr)
    return arr.astype(np.int32)


def load_pair(source: PairSource, to_grey: bool = True, moving_label_alone: bool = False) -> RegistrationPair:
    """Read and check one pair; resample the moving image onto the fixed grid when the grids differ.

    ``to_grey``: average multi-channel images (e.g. RGB PNGs of grey values) to one channel, the input
    the networks take. ``moving_label_alone``: a moving label map without a fixed one is allowed (prediction:
    labels to propagate onto the fixed image); otherwise labels come for both images or for neither.
    Raises :class:`~medlearn.errors.InputError` for the cases the module lists.
    """
    where = source.source or "the pair list"
    for path, what in ((source.fixed, "fixed image"), (source.moving, "moving image"),
                       (source.fixed_label, "fixed label map"), (source.moving_label, "moving label map"),
                       (source.fixed_mask, "fixed mask"), (source.moving_mask, "moving mask"),
                       (source.fixed_keypoints, "fixed keypoints"), (source.moving_keypoints, "moving keypoints"),
                       (source.displacement, "known displacement field")):
        _check_exists(path, where, what)
    alone = moving_label_alone and source.fixed_label is None
    if (source.fixed_label is None) != (source.moving_label is None) and not alone:
        given = source.fixed_label or source.moving_label
        side = "fixed" if source.fixed_label is not None else "moving"
        raise InputError(given, f"pair '{source.name}' has a label map for the {side} image only",
                         "give labels for both images or for neither")
    if (source.fixed_keypoints is None) != (source.moving_keypoints is None):
        given = source.fixed_keypoints or source.moving_keypoints
        raise InputError(given, f"pair '{source.name}' has keypoints for one image only",
                         "give corresponding keypoints for both images or for neither")

    fixed, fmeta = read_image(source.fixed)
    moving, mmeta = read_image(source.moving)
    if fmeta.ndim != mmeta.ndim:
        raise InputError(source.moving, f"moving image is {mmeta.ndim}D but the fixed image {source.fixed.name} is "
                         f"{fmeta.ndim}D", "register images of the same dimensionality")
    if fmeta.ndim not in (2, 3):
        raise InputError(source.fixed, f"registration needs 2D or 3D images, got {fmeta.ndim}D")
    if source.expected_shape is not None:
        for path, meta in ((source.fixed, fmeta), (source.moving, mmeta)):
            if tuple(meta.spatial_shape) != tuple(source.expected_shape):
                raise InputError(path, f"image shape {tuple(meta.spatial_shape)} contradicts tensorImageShape "
                                 f"{list(source.expected_shape)} in {where}", "fix the image or the dataset.json")
    if to_grey:
        fixed = fixed.mean(0, keepdims=True) if fixed.shape[0] > 1 else fixed
        moving = moving.mean(0, keepdims=True) if moving.shape[0] > 1 else moving
    notes: list[str] = []

    fixed_label = moving_label = None
    if source.moving_label is not None and (source.fixed_label is not None or alone):
        if source.fixed_label is not None:
            fixed_label = _read_label(source.fixed_label, fmeta.spatial_shape, "fixed label map")
        moving_label = _read_label(source.moving_label, mmeta.spatial_shape, "moving label map")
        for path, lab in ((source.fixed_label, fixed_label), (source.moving_label, moving_label)):
            if lab is None:
                continue
            if not lab.any():
                raise InputError(path, "label map is empty (no foreground voxel)", "give a label map with structures "
                                 "or leave labels out for this pair")
    fixed_mask = _read_label(source.fixed_mask, fmeta.spatial_shape, "fixed mask") > 0 if source.fixed_mask else None
    moving_mask = _read_label(source.moving_mask, mmeta.spatial_shape, "moving mask") > 0 if source.moving_mask \
        else None
    fixed_kp = moving_kp = None
    if source.fixed_keypoints is not None and source.moving_keypoints is not None:
        fixed_kp = read_keypoints(source.fixed_keypoints, fmeta.ndim)
        moving_kp = read_keypoints(source.moving_keypoints, mmeta.ndim)
        if len(fixed_kp) != len(moving_kp):
            raise InputError(source.moving_keypoints, f"{len(moving_kp)} moving keypoints but {len(fixed_kp)} fixed "
                             "ones", "keypoint rows must correspond one to one")

    # resample the moving side onto the fixed grid
    resampled = not _same_grid(fmeta, mmeta)
    if resampled:
        lo_f, hi_f = _world_box(fmeta)
        lo_m, hi_m = _world_box(mmeta)
        if np.any(hi_m < lo_f) or np.any(hi_f < lo_m):
            raise InputError(source.moving, f"moving image does not overlap the fixed image {source.fixed.name} at all "
                             f"(world boxes {np.round(lo_m, 1).tolist()}..{np.round(hi_m, 1).tolist()} and "
                             f"{np.round(lo_f, 1).tolist()}..{np.round(hi_f, 1).tolist()} mm are disjoint)",
                             "check the images' origins and orientations")
        matrix = _fixed_to_moving(fmeta, mmeta)
        if _inside_fraction(matrix, fmeta.spatial_shape, mmeta.spatial_shape) == 0.0:
            raise InputError(source.moving, f"moving image does not overlap the fixed image {source.fixed.name} at all "
                             "after resampling onto its grid", "check the images' origins and orientations")
        shape = tuple(fmeta.spatial_shape)
        moving = _resample(moving, matrix, shape, order=1)
        if moving_label is not None:
            moving_label = _resample(moving_label, matrix, shape, order=0)
        if moving_mask is not None:
            moving_mask = _resample(moving_mask.astype(np.uint8), matrix, shape, order=0) > 0
        if moving_kp is not None:
            inv = np.linalg.inv(matrix)
            n = fmeta.ndim
            moving_kp = moving_kp @ inv[:n, :n].T + inv[:n, n]
        notes.append(f"moving image resampled onto the fixed grid (spacing {tuple(round(s, 4) for s in mmeta.spacing)}"
                     f" -> {tuple(round(s, 4) for s in fmeta.spacing)}, shape {tuple(mmeta.spatial_shape)} -> {shape})")
    if fixed_label is not None and moving_label is not None:
        common = (set(np.unique(fixed_label).tolist()) & set(np.unique(moving_label).tolist())) - {0}
        if not common:
            raise InputError(source.moving_label, f"label maps of pair '{source.name}' share no structure id"
                             + (" after resampling" if resampled else ""),
                             "both label maps must use the same ids for the same structures")
        only = (set(np.unique(fixed_label).tolist()) ^ set(np.unique(moving_label).tolist())) - {0}
        if only:
            notes.append(f"label ids in one image only (not scored): {sorted(int(v) for v in only)[:20]}")

    known = None
    if source.displacement is not None:
        from medlearn.tasks.register.io import read_displacement_field

        known, kmeta = read_displacement_field(source.displacement)
        if not _same_grid(kmeta, fmeta):
            raise InputError(source.displacement, "known displacement field is not on the fixed image's grid",
                             "write it with the fixed image's geometry")
    return RegistrationPair(
        name=source.name, fixed=fixed.astype(np.float32), moving=moving.astype(np.float32), fixed_meta=fmeta,
        moving_meta=mmeta, fixed_label=fixed_label, moving_label=moving_label, fixed_mask=fixed_mask,
        moving_mask=moving_mask, fixed_keypoints=fixed_kp, moving_keypoints=moving_kp, known_ddf=known,
        resampled=resampled, fixed_modality=source.fixed_modality, moving_modality=source.moving_modality,
        notes=notes)


# -- Learn2Reg -----------------------------------------------------------------------------------------------
def find_learn2reg_json(root: str | Path) -> Path:
    """``root`` itself (a json file), or the ``dataset.json`` / single ``*_dataset.json`` in the folder."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    if (root / "dataset.json").is_file():
        return root / "dataset.json"
    found = sorted(root.glob("*_dataset.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(root, "no dataset.json or *_dataset.json in this folder", "point to a Learn2Reg dataset "
                         "folder, its json file, or a CSV of pairs")
    raise InputError(root, f"several dataset jsons: {', '.join(p.name for p in found)}", "point to one of them")


def _norm(rel: str) -> str:
    rel = str(rel).strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def _modality_of(path: str, modalities: dict[str, str]) -> str | None:
    if not modalities:
        return None
    if len(set(modalities.values())) == 1:
        return next(iter(modalities.values()))
    stem = Path(path).name.split(".")[0]
    m = _SUFFIX.search(stem)
    if m and str(int(m.group(1))) in modalities:
        return modalities[str(int(m.group(1)))]
    return None


def _tensor_shape(data: dict, json_path: Path) -> tuple[int, ...] | None:
    shapes = data.get("tensorImageShape")
    if shapes is None:
        return None
    if isinstance(shapes, dict):
        values = list(shapes.values())
        if not values:
            return None
        shapes = values[0]
    try:
        shape = tuple(int(s) for s in shapes)
    except (TypeError, ValueError):
        raise InputError(json_path, f"tensorImageShape must be a list of integers, got {shapes!r}") from None
    if len(shape) not in (2, 3):
        raise InputError(json_path, f"tensorImageShape must have 2 or 3 sides, got {list(shape)}")
    return shape


def read_learn2reg(root: str | Path, split: str = "train", n_train_pairs: int | None = None,
                   seed: int = 0) -> RegistrationDataset:
    """The pairs of ``split`` (``"train"``, ``"val"`` or ``"test"``) of a Learn2Reg dataset.

    ``"val"``/``"test"``: ``registration_val``/``registration_test``. ``"train"``: ``training_paired_images``
    for paired data (or, without that key, the ``training`` images grouped by case and paired
    ``_0000`` fixed / ``_0001`` moving); for unpaired data ``n_train_pairs`` (default: one per image)
    random ordered pairs of distinct ``training`` images not used by ``registration_val``, seeded.
    """
    json_path = find_learn2reg_json(root)
    base = json_path.parent
    try:
        data = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"cannot read dataset json ({exc})".replace("\n", " ")) from exc
    if not isinstance(data, dict):
        raise InputError(json_path, "dataset json must be an object with 'training', 'registration_val', ... keys")
    modalities = {str(k): str(v) for k, v in (data.get("modality") or {}).items()} \
        if isinstance(data.get("modality"), dict) else {}
    shape = _tensor_shape(data, json_path)
    src = str(json_path)

    index: dict[str, dict[str, str]] = {}
    for key in ("training", "test"):
        entries = data.get(key) or []
        if not isinstance(entries, list):
            raise InputError(json_path, f"'{key}' must be a list of image entries")
        for k, entry in enumerate(entries):
            if isinstance(entry, str):
                entry = {"image": entry}
            if not isinstance(entry, dict) or "image" not in entry:
                raise InputError(json_path, f"{key}[{k}] has no 'image' path", "entries look like {\"image\": "
                                 "\"./imagesTr/X_0000.nii.gz\", \"label\": \"./labelsTr/X_0000.nii.gz\"}")
            clean = {"image": _norm(entry["image"])}
            for name, aliases in (("label", ("label", "seg", "segmentation")), ("mask", ("mask",)),
                                  ("keypoints", ("keypoints", "keypoint"))):
                for alias in aliases:
                    if entry.get(alias):
                        clean[name] = _norm(entry[alias])
                        break
            index[clean["image"]] = clean

    def companion(image: str, kind: str) -> Path | None:
        entry = index.get(image, {})
        if kind in entry:
            return base / entry[kind]
        folder = {"label": "labels", "mask": "masks", "keypoints": "keypoints"}[kind]
        guess = re.sub(r"(^|/)images(Tr|Ts)/", rf"\g<1>{folder}\g<2>/", image)
        if kind == "keypoints":
            guess = re.sub(r"\.nii(\.gz)?$", ".csv", guess)
        if guess != image and (base / guess).is_file():
            return base / guess
        return None

    def make(fixed: str, moving: str) -> PairSource:
        f, m = _norm(fixed), _norm(moving)
        name = f"{Path(f).name.split('.')[0]}<-{Path(m).name.split('.')[0]}"
        fl, ml = companion(f, "label"), companion(m, "label")
        if (fl is None) != (ml is None):  # lenient: labels on one side only are dropped for the pair, not an error
            fl = ml = None
        fk, mk = companion(f, "keypoints"), companion(m, "keypoints")
        if (fk is None) != (mk is None):
            fk = mk = None
        return PairSource(name=name, fixed=base / f, moving=base / m, source=src, fixed_label=fl, moving_label=ml,
                          fixed_mask=companion(f, "mask"), moving_mask=companion(m, "mask"), fixed_keypoints=fk,
                          moving_keypoints=mk, fixed_modality=_modality_of(f, modalities),
                          moving_modality=_modality_of(m, modalities), expected_shape=shape)

    def pair_list(key: str) -> list[tuple[str, str]]:
        entries = data.get(key) or []
        if not isinstance(entries, list):
            raise InputError(json_path, f"'{key}' must be a list of {{\"fixed\", \"moving\"}} pairs")
        out = []
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("fixed") or not entry.get("moving"):
                raise InputError(json_path, f"{key}[{k}] needs 'fixed' and 'moving' paths")
            out.append((str(entry["fixed"]), str(entry["moving"])))
        return out

    pairing = str(data.get("pairings", "paired" if data.get("training_paired_images") else "unpaired")).lower()
    if pairing not in ("paired", "unpaired"):
        raise InputError(json_path, f"pairings must be 'paired' or 'unpaired', got '{pairing}'")
    if split in ("val", "test"):
        key = f"registration_{split}"
        pairs = pair_list(key)
        if not pairs:
            raise InputError(json_path, f"dataset json lists no {key} pairs", "choose another split")
        sources = [make(f, m) for f, m in pairs]
    elif split == "train":
        if pairing == "paired":
            pairs = pair_list("training_paired_images")
            if not pairs:  # group the training images by case: _0000 fixed, _0001 moving
                cases: dict[str, dict[int, str]] = {}
                for image in index:
                    stem = Path(image).name.split(".")[0]
                    m = _SUFFIX.search(stem)
                    if m:
                        cases.setdefault(str(Path(image).parent / stem[: m.start()]), {})[int(m.group(1))] = image
                pairs = [(c[0], c[1]) for c in cases.values() if 0 in c and 1 in c]
        else:
            val_images = {_norm(p) for pair in pair_list("registration_val") for p in pair}
            training = [_norm(e["image"] if isinstance(e, dict) else e) for e in data.get("training") or []]
            images = [k for k in dict.fromkeys(training) if k not in val_images]
            if len(images) < 2:
                raise InputError(json_path, f"unpaired training needs at least 2 training images, found {len(images)}")
            rng = np.random.default_rng(seed)
            n = n_train_pairs or len(images)
            pairs = []
            for _ in range(n):
                i, j = rng.choice(len(images), size=2, replace=False)
                pairs.append((images[int(i)], images[int(j)]))
        if not pairs:
            raise InputError(json_path, "dataset json gives no training pairs", "add training_paired_images, or "
                             "training images named *_0000/*_0001 per case")
        sources = [make(f, m) for f, m in pairs]
    else:
        raise InputError("split", f"unknown split '{split}'", "choose train, val or test")
    label_names: dict[int, str] = {}
    if isinstance(data.get("labels"), dict):
        for key, value in data["labels"].items():
            try:
                label_names[int(key)] = str(value)
            except (TypeError, ValueError):
                continue
    return RegistrationDataset(name=str(data.get("name", json_path.parent.name)), layout="learn2reg", pairs=sources,
                               modalities=modalities, pairing=pairing, tensor_shape=shape,
                               splits=[split] * len(sources), label_names=label_names)


# -- CSV and atlas -------------------------------------------------------------------------------------------
_CSV_PATHS = ("fixed_label", "moving_label", "fixed_mask", "moving_mask", "fixed_keypoints", "moving_keypoints",
              "displacement")


def read_pairs_csv(path: str | Path) -> RegistrationDataset:
    """Pairs from a CSV with columns ``fixed,moving[,fixed_label,moving_label,...]`` (see the module)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "pair table not found")
    rows, columns = _read_table(path, "pair table", "one row per pair: fixed,moving[,fixed_label,moving_label]")
    for need in ("fixed", "moving"):
        if need not in columns:
            raise InputError(path, f"pair table has no '{need}' column", f"columns found: {', '.join(columns)}")
    base = path.parent
    out = []
    splits: list[str] = []
    for k, row in enumerate(rows):
        def cell(name: str, row: dict = row) -> str | None:
            raw = row.get(columns.get(name, ""), None)
            return raw.strip() if isinstance(raw, str) and raw.strip() else None

        fixed, moving = cell("fixed"), cell("moving")
        if not fixed or not moving:
            raise InputError(path, f"row {k + 2} has an empty fixed or moving path")
        extra = {name: (base / cell(name)) if cell(name) else None for name in _CSV_PATHS}
        split = (cell("split") or "").lower()
        if split and split not in ("train", "val", "test"):
            raise InputError(path, f"row {k + 2}: split '{cell('split')}' is not train, val or test")
        splits.append(split)
        out.append(PairSource(name=cell("name") or f"pair_{k:04d}", fixed=base / fixed, moving=base / moving,
                              source=f"{path} row {k + 2}", fixed_modality=cell("fixed_modality"),
                              moving_modality=cell("moving_modality"), **extra))
    return RegistrationDataset(name=path.stem, layout="csv", pairs=out, pairing="paired",
                               splits=splits if any(splits) else None)


def atlas_pairs(images: str | Path | list[str | Path], atlas: str | Path, atlas_label: str | Path | None = None,
                labels: list[str | Path | None] | None = None) -> RegistrationDataset:
    """Atlas mode: every image (a folder of images or a list) registered to the one fixed ``atlas``.

    ``labels`` (aligned with ``images``) and ``atlas_label`` give the label maps Dice uses.
    """
    from medlearn.data.images import is_image_path

    atlas = Path(atlas)
    if not atlas.exists():
        raise InputError(atlas, "atlas (fixed) image not found", "check --atlas")
    if isinstance(images, (str, Path)) and Path(images).suffix.lower() == ".csv":
        paths, labels = _image_table(Path(images))
    elif isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise InputError(folder, "image folder not found", "give a folder of images or a CSV with an image column")
        paths = sorted(p for p in folder.iterdir()
                       if p.is_file() and is_image_path(p) and p.resolve() != atlas.resolve())
    else:
        paths = [Path(p) for p in images]
    if not paths:
        raise InputError(images if isinstance(images, (str, Path)) else "images", "no images to register to the atlas")
    if labels is not None and len(labels) != len(paths):
        raise InputError("labels", f"{len(labels)} label maps for {len(paths)} images")
    out = []
    for k, p in enumerate(paths):
        lab = Path(labels[k]) if labels is not None and labels[k] is not None else None
        out.append(PairSource(name=f"atlas<-{p.name.split('.')[0]}", fixed=atlas, moving=p,
                              source=f"atlas mode ({atlas})",
                              fixed_label=Path(atlas_label) if atlas_label else None, moving_label=lab))
    return RegistrationDataset(name=atlas.name.split(".")[0], layout="atlas", pairs=out, pairing="atlas")


def _image_table(path: Path) -> tuple[list[Path], list[Path | None] | None]:
    """Atlas mode's CSV: an ``image`` (or ``moving``) column and an optional ``label`` one, relative paths."""
    rows, columns = _read_table(path, "image table", "one row per image: image[,label]")
    key = columns.get("image") or columns.get("moving")
    if key is None:
        raise InputError(path, "image table has no 'image' column", f"columns found: {', '.join(columns)}")
    label_key = columns.get("label") or columns.get("moving_label")
    images = [path.parent / row[key].strip() for row in rows if (row.get(key) or "").strip()]
    labels = None
    if label_key is not None:
        labels = [path.parent / row[label_key].strip() if (row.get(label_key) or "").strip() else None for row in rows]
    return images, labels


def read_registration_data(source: str | Path, split: str = "train", atlas: str | Path | None = None,
                           atlas_label: str | Path | None = None, seed: int = 0) -> RegistrationDataset:
    """Dispatch on the layout: ``atlas`` given -> atlas mode over the images in ``source``; a ``.csv`` ->
    :func:`read_pairs_csv`; a folder or ``.json`` -> :func:`read_learn2reg` (``split``)."""
    source = Path(source)
    if atlas is not None:
        return atlas_pairs(source, atlas, atlas_label)
    if source.suffix.lower() == ".csv":
        return read_pairs_csv(source)
    return read_learn2reg(source, split=split, seed=seed)


def _read_table(path: Path, what: str, hint: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The rows of a CSV and its columns (lower-cased name -> header as written); one line if unreadable or empty."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the {what} ({exc})") from exc
    if not rows:
        raise InputError(path, f"{what} has no rows", hint)
    return rows, {c.strip().lower(): c for c in rows[0] if c is not None}
