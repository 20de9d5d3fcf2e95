"""Classification datasets: MedMNIST ``.npz``, CSV tables and folder-per-class layouts.

Every loader returns a :class:`ClassificationData`: images in memory as ``(N, C, *spatial)``
float32, labels, label names, the task kind, optional patient ids and optional fixed splits.

CSV layout: a column ``image`` (path relative to the CSV's folder), one label column (binary or
multi-class; default ``label``) or several 0/1 columns (multi-label; empty = missing), optional
``patient_id`` and ``split`` (train/val/test) columns.
Folder layout: ``ROOT/<class name>/<image files>``, optionally ``ROOT/<split>/<class>/<files>``.
MedMNIST: ``{train,val,test}_images`` and ``{train,val,test}_labels`` (labels ``(N,)`` or ``(N, K)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from medlearn.data.images import IMAGE_SUFFIXES, image_suffix, read_image
from medlearn.data.problems import Problem
from medlearn.errors import InputError

Task = Literal["binary", "multiclass", "multilabel", "ordinal"]
SPLITS = ("train", "val", "test")


@dataclass
class ClassificationData:
    """A labelled image set held in memory.

    ``images``: ``(N, C, *spatial)`` float32. ``labels``: ``(N,)`` int64 class indices
    (binary/multiclass/ordinal) or ``(N, K)`` float32 with NaN = missing (multilabel).
    ``ids``: a name per image (file path or ``split[index]``). ``patient_ids``/``splits``: ``(N,)``
    str arrays or None. ``spacing``: mm per spatial axis of the first image.
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    task: Task
    ids: list[str]
    source: str
    patient_ids: np.ndarray | None = None
    splits: np.ndarray | None = None
    spacing: tuple[float, ...] | None = None
    value_range: tuple[float, float] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def spatial_dims(self) -> int:
        return self.images.ndim - 2

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subset(self, index: np.ndarray) -> ClassificationData:
        """The rows at ``index`` (a boolean mask or integer indices)."""
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        ids = [self.ids[i] for i in np.arange(len(self))[index]]
        return ClassificationData(self.images[index], self.labels[index], self.label_names, self.task, ids,
                                  self.source, pick(self.patient_ids), pick(self.splits), self.spacing,
                                  self.value_range)

    def class_counts(self) -> np.ndarray:
        """Images per class (multilabel: positives per label)."""
        if self.task == "multilabel":
            return np.nansum(self.labels, axis=0).astype(int)
        return np.bincount(self.labels, minlength=self.num_classes)


def load_classification_data(path: str | Path, *, label_columns: Sequence[str] | None = None,
                             image_column: str = "image", patient_column: str = "patient_id",
                             split_column: str = "split", task: Task | None = None,
                             classes: Sequence[str] | None = None, resize: Sequence[int] | None = None,
                             allow_outside: bool = False) -> ClassificationData:
    """Load any supported layout. ``classes`` fixes the label set and its order (needed for ordinal)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "dataset not found", "give a .npz, a .csv or a folder with one subfolder per class")
    if path.suffix.lower() == ".npz":
        data = load_medmnist_npz(path, task=task, classes=classes)
    elif path.suffix.lower() in (".csv", ".tsv"):
        data = load_csv_table(path, label_columns=label_columns, image_column=image_column,
                              patient_column=patient_column, split_column=split_column, task=task,
                              classes=classes, resize=resize, allow_outside=allow_outside)
    elif path.is_dir():
        data = load_class_folders(path, task=task, classes=classes, resize=resize)
    else:
        raise InputError(path, "unsupported dataset layout",
                         "give a .npz, a .csv or a folder with one subfolder per class")
    return data


# -- MedMNIST ---------------------------------------------------------------------------------

def load_medmnist_npz(path: str | Path, task: Task | None = None, classes: Sequence[str] | None = None,
                      require_labels: bool = True) -> ClassificationData:
    """MedMNIST v2 ``.npz`` (Yang et al., Sci. Data 2023): official train/val/test splits kept.

    Images ``(N, H, W)``, ``(N, H, W, 3)`` or ``(N, D, H, W)`` (3D sets) uint8, i.e. numpy's row-major
    raster order; they are transposed to the package's ``(C, X, Y[, Z])`` convention (X = columns), the
    order every medlearn entry point (files, CLI, Python API) uses. ``require_labels=False`` reads the
    images of any ``*_images`` array (for prediction).
    """
    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
        keys = set(npz.files)
    except Exception as exc:
        raise InputError(path, f"cannot read .npz ({type(exc).__name__}: {exc})", "the file may be truncated") from exc
    if not require_labels:
        present = [s for s in SPLITS if f"{s}_images" in keys] or sorted(k[:-len("_images")] for k in keys
                                                                         if k.endswith("_images"))
        if not present:
            raise InputError(path, f"no *_images array (found {sorted(keys)})", "save the images as e.g. test_images")
        arrays = [np.asarray(npz[f"{s}_images"]) for s in present]
        x = _npz_images(np.concatenate(arrays), path)
        ids = [f"{s}[{i}]" for s, a in zip(present, arrays, strict=True) for i in range(len(a))]
        return ClassificationData(x, np.zeros(len(x), np.int64), list(classes or []), task or "binary", ids,
                                  str(path), value_range=(float(x.min()), float(x.max())))
    present = [s for s in SPLITS if f"{s}_images" in keys and f"{s}_labels" in keys]
    if "train" not in present:
        raise InputError(path, "missing keys: expected train_images/train_labels (and val_, test_), "
                         f"found {sorted(keys)}",
                         "save the arrays with these MedMNIST names")
    images, labels, splits, ids = [], [], [], []
    for split in present:
        try:
            x = np.asarray(npz[f"{split}_images"])
            y = np.asarray(npz[f"{split}_labels"])
        except Exception as exc:
            raise InputError(path, f"cannot read '{split}' arrays ({exc})", "the file may be truncated") from exc
        if len(x) != len(y):
            raise InputError(path, f"{split}_images has {len(x)} rows but {split}_labels has {len(y)}")
        if len(x) == 0 or x.size == 0:
            raise InputError(path, f"{split}_images is empty (shape {x.shape})", "save at least one image per split")
        images.append(x)
        labels.append(y.reshape(len(y), -1))
        splits += [split] * len(x)
        ids += [f"{split}[{i}]" for i in range(len(x))]
    shapes = {im.shape[1:] for im in images}
    if len(shapes) > 1:
        raise InputError(path, f"splits have different image shapes {sorted(shapes)}")
    x = _npz_images(np.concatenate(images), path)
    y = np.concatenate(labels)
    value_range = (float(x.min()), float(x.max()))
    if y.shape[1] > 1:  # multi-label (e.g. ChestMNIST)
        names = list(classes) if classes else [str(i) for i in range(y.shape[1])]
        return ClassificationData(x, y.astype(np.float32), names, "multilabel", ids, str(path),
                                  splits=np.asarray(splits), value_range=value_range)
    if not np.isfinite(y).all() or not np.equal(np.mod(y, 1), 0).all():
        raise InputError(path, "labels must be whole class numbers 0..K-1", "fix the *_labels arrays")
    y = y[:, 0].astype(np.int64)
    values = sorted(int(v) for v in np.unique(y))
    if classes is None and values != list(range(len(values))) and values[0] >= 0:
        gaps = sorted(set(range(values[-1] + 1)) - set(values))
        raise InputError(path, f"label values {values} are not 0..K-1: class(es) "
                         f"{_ranges(gaps)} have no images (a stray mask value such as 255?)",
                         "relabel to consecutive classes 0..K-1, or pass --classes with the full label set")
    names = list(classes) if classes else [str(i) for i in range(int(y.max()) + 1)]
    if y.min() < 0 or y.max() >= len(names):
        raise InputError(path, f"label {int(y.max())} is not in the label set {names}")
    kind: Task = task or ("binary" if len(names) == 2 else "multiclass")
    return ClassificationData(x, y, names, kind, ids, str(path), splits=np.asarray(splits), value_range=value_range)


def _ranges(values: list[int]) -> str:
    """``[2, 3, 4, 9]`` -> ``"2..4, 9"``."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}..{v}")
            start = None
    return ", ".join(out)


def _npz_images(x: np.ndarray, path: Path) -> np.ndarray:
    """MedMNIST raster arrays -> ``(N, C, X, Y[, Z])`` float32 (finite)."""
    if x.size == 0:
        raise InputError(path, f"the image arrays are empty (shape {x.shape})")
    if x.ndim == 4 and x.shape[-1] == 3:  # (N, H, W, 3) RGB
        x = np.transpose(x, (0, 3, 2, 1))
    elif x.ndim == 3:  # (N, H, W)
        x = np.swapaxes(x, 1, 2)[:, None]
    elif x.ndim == 4:  # (N, D, H, W) 3D
        x = np.transpose(x, (0, 3, 2, 1))[:, None]
    else:
        raise InputError(path, f"unexpected image array shape {x.shape}",
                         "MedMNIST layout: (N, H, W), (N, H, W, 3) or (N, D, H, W)")
    x = x.astype(np.float32)
    _require_finite(x, path)
    return x


# -- CSV tables ---------------------------------------------------------------------------------

def resolve_table_path(table: str | Path, rel: object, row: int, allow_outside: bool = False) -> Path:
    """The image file a table row names, relative to the table's folder.

    A path that leaves that folder (``../``, absolute) is refused unless ``allow_outside``: a table
    handed over with a dataset should not make medlearn read files elsewhere on the machine.
    """
    table = Path(table)
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"{table}:{row + 2}", "empty image path")
    root = table.parent.resolve()
    target = (table.parent / rel.strip()).resolve()
    if not allow_outside and root not in target.parents and target != root:
        raise InputError(f"{table}:{row + 2}", f"image path '{rel}' points outside the table's folder",
                         "move the images under the table's folder, or allow it (--allow-outside-paths)")
    return table.parent / rel.strip()


# -- CSV tables (reading) ---------------------------------------------------------------------

def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    try:
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                           keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise InputError(path, f"cannot read table ({type(exc).__name__}: {exc})") from exc


def load_csv_table(path: str | Path, *, label_columns: Sequence[str] | None = None, image_column: str = "image",
                   patient_column: str = "patient_id", split_column: str = "split", task: Task | None = None,
                   classes: Sequence[str] | None = None, resize: Sequence[int] | None = None,
                   require_labels: bool = True, allow_outside: bool = False) -> ClassificationData:
    """A CSV (or TSV) table of image paths and labels; see the module docstring for the layout."""
    path = Path(path)
    df = read_table(path)
    if image_column not in df.columns:
        raise InputError(path, f"no '{image_column}' column (columns: {', '.join(df.columns)})",
                         "name the image path column 'image' or pass --image-column")
    if df.empty:
        raise InputError(path, "the table has no rows")
    reserved = {image_column, patient_column, split_column}
    if label_columns is None:
        label_columns = ["label"] if "label" in df.columns else [c for c in df.columns if c not in reserved]
    missing = [c for c in label_columns if c not in df.columns]
    if require_labels and (missing or not label_columns):
        raise InputError(path, f"label column(s) not found: {', '.join(missing) or '(none)'} "
                         f"(columns: {', '.join(df.columns)})", "name the label column 'label' or pass --label")
    files = [resolve_table_path(path, p, row, allow_outside) for row, p in enumerate(df[image_column])]
    images, ids, spacing = _read_images(files, path, resize)
    labels, names, kind = _parse_labels(df, list(label_columns), path, task, classes) if require_labels else (
        np.zeros(len(df), np.int64), list(classes or []), task or "binary")
    patient_ids = df[patient_column].fillna("").to_numpy(str) if patient_column in df.columns else None
    splits = None
    if split_column in df.columns:
        splits = df[split_column].fillna("").str.strip().str.lower().to_numpy(str)
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise InputError(path, f"column '{split_column}' has values {bad}; allowed: train, val, test")
    return ClassificationData(images, labels, names, kind, ids, str(path), patient_ids, splits, spacing,
                              (float(images.min()), float(images.max())))


def _parse_labels(df: pd.DataFrame, columns: list[str], path: Path, task: Task | None,
                  classes: Sequence[str] | None) -> tuple[np.ndarray, list[str], Task]:
    if len(columns) > 1 or task == "multilabel":
        values = df[columns].apply(pd.to_numeric, errors="coerce")
        raw = df[columns]
        bad = (values.isna() & raw.notna()) | ~(values.isna() | values.isin([0, 1]))
        if bad.to_numpy().any():
            row, col = np.argwhere(bad.to_numpy())[0]
            raise InputError(path, f"row {row + 2}, column '{columns[col]}': multi-label values must be 0, 1 or empty, "
                             f"got '{raw.iloc[row, col]}'")
        return values.to_numpy(np.float32), list(columns), "multilabel"
    column = columns[0]
    raw = df[column]
    if raw.isna().any():
        row = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise InputError(path, f"row {row + 2}: empty label in column '{column}'")
    raw = raw.str.strip()
    if classes:
        names = [str(c) for c in classes]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            row = int(np.flatnonzero(raw.isin(unknown).to_numpy())[0])
            raise InputError(path, f"row {row + 2}: label '{raw.iloc[row]}' is not in the label set {names}",
                             "fix the label or the --classes list")
    else:
        uniques = sorted(set(raw))
        numeric = all(_is_int(u) for u in uniques)
        names = sorted(uniques, key=int) if numeric else uniques
    index = {n: i for i, n in enumerate(names)}
    labels = raw.map(index).to_numpy(np.int64)
    kind: Task = task or ("binary" if len(names) == 2 else "multiclass")
    if kind == "binary" and len(names) != 2:
        raise InputError(path, f"binary task needs 2 classes, column '{column}' has {len(names)}: {names}")
    return labels, names, kind


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


# -- folders ----------------------------------------------------------------------------------

def load_class_folders(root: str | Path, task: Task | None = None, classes: Sequence[str] | None = None,
                       resize: Sequence[int] | None = None) -> ClassificationData:
    """``ROOT/<class>/<files>`` or ``ROOT/{train,val,test}/<class>/<files>``."""
    root = Path(root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name.lower() in SPLITS]
    entries: list[tuple[Path, str, str | None]] = []
    if split_dirs:
        for split_dir in split_dirs:
            for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
                entries += [(f, class_dir.name, split_dir.name.lower()) for f in _image_files(class_dir)]
    else:
        for class_dir in subdirs:
            entries += [(f, class_dir.name, None) for f in _image_files(class_dir)]
    if not entries:
        raise InputError(root, "no images found in class subfolders",
                         "use ROOT/<class>/<image> (or ROOT/<split>/<class>/<image>), or a CSV table")
    names = list(classes) if classes else sorted({c for _, c, _ in entries})
    unknown = sorted({c for _, c, _ in entries} - set(names))
    if unknown:
        raise InputError(root, f"class folder(s) {unknown} are not in the label set {names}")
    images, ids, spacing = _read_images([f for f, _, _ in entries], root, resize)
    labels = np.asarray([names.index(c) for _, c, _ in entries], np.int64)
    splits = np.asarray([s for _, _, s in entries]) if split_dirs else None
    kind: Task = task or ("binary" if len(names) == 2 else "multiclass")
    return ClassificationData(images, labels, names, kind, ids, str(root), None, splits, spacing,
                              (float(images.min()), float(images.max())))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if (p.is_file() and image_suffix(p) in IMAGE_SUFFIXES)
                  or (p.is_dir() and any(q.suffix.lower() == ".dcm" for q in p.glob("*.dcm"))))


def _read_images(files: Sequence[Path], source: Path, resize: Sequence[int] | None
                 ) -> tuple[np.ndarray, list[str], tuple[float, ...] | None]:
    """Read every image; all must share channel count and (unless ``resize``) spatial shape."""
    arrays = []
    first_meta = None
    for f in files:
        array, meta = read_image(f)
        if resize is not None:
            array = resize_image(array, resize)
        if first_meta is None:
            first_meta, first_shape = meta, array.shape
        elif array.shape[0] != first_shape[0]:
            raise InputError(f, f"has {array.shape[0]} channel(s) but {first_meta.path} has {first_shape[0]}",
                             "convert all images to the same number of channels")
        elif array.shape != first_shape:
            raise InputError(f, f"has size {array.shape[1:]} but {first_meta.path} has {first_shape[1:]}",
                             "resize the images or pass --set data.resize=[H,W]")
        arrays.append(array)
    ids = [str(f) for f in files]
    spacing = first_meta.spacing if first_meta is not None else None
    return np.stack(arrays).astype(np.float32, copy=False), ids, spacing


def resize_image(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize ``(C, *spatial)`` to ``size`` with area interpolation (MONAI ``Resize``)."""
    from monai.transforms import Resize

    if len(size) != array.ndim - 1:
        raise InputError("data.resize", f"needs {array.ndim - 1} sizes for these images, got {list(size)}")
    return np.asarray(Resize(spatial_size=tuple(size), mode="area")(array))


def _require_finite(x: np.ndarray, path: Path) -> None:
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0, 0])
        raise InputError(path, f"image {bad} contains NaN or infinite values")


# -- checks -------------------------------------------------------------------------------------

def check_classification_data(data: ClassificationData) -> list[Problem]:
    """Problems that would make training fail or mislead: leaks, empty classes, tiny splits."""
    problems: list[Problem] = []
    counts = data.class_counts()
    for name, count in zip(data.label_names, counts, strict=True):
        if count == 0:
            problems.append(Problem(data.source, f"class '{name}' has no examples", "drop it from the label set"))
        elif count < 5:
            problems.append(Problem(data.source, f"class '{name}' has only {count} example(s)",
                                    "collect more or merge classes", "warning"))
    if data.patient_ids is not None and data.splits is not None:
        frame = pd.DataFrame({"patient": data.patient_ids, "split": data.splits})
        leaks = frame.groupby("patient")["split"].nunique()
        leaks = leaks[leaks > 1]
        if len(leaks):
            problems.append(Problem(data.source, f"{len(leaks)} patient(s) appear in more than one split, "
                                    f"e.g. '{leaks.index[0]}'", "assign each patient to a single split"))
    if data.patient_ids is not None and data.task != "multilabel" and len(data.labels):
        # a patient-grouped split holds out whole patients: with few per class, val/test hold one or two
        frame = pd.DataFrame({"patient": data.patient_ids, "label": data.labels})
        per_class = frame.groupby("label")["patient"].nunique()
        fewest = int(per_class.min()) if len(per_class) else 0
        if fewest < 10:
            name = data.label_names[int(per_class.idxmin())]
            problems.append(Problem(data.source, f"only {fewest} patient(s) of class '{name}': a stratified "
                                    "patient-grouped split cannot give every split several of them, so "
                                    "validation and test estimates will be very noisy",
                                    "collect more patients, or give a split column you chose", "warning"))
    if data.splits is not None:
        for split in ("train",):
            if not (data.splits == split).any():
                problems.append(Problem(data.source, f"no '{split}' rows in the split column"))
    if data.task != "multilabel" and len(data.labels):
        imbalance = counts.max() / max(counts.min(), 1)
        if imbalance >= 10:
            problems.append(Problem(data.source, f"strong class imbalance (ratio {imbalance:.1f})",
                                    "medlearn will oversample/weight the loss; consider more minority data",
                                    "warning"))
    flat = data.images.reshape(len(data.images), -1)
    constant = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
    if len(constant):
        problems.append(Problem(data.ids[constant[0]], f"image is constant ({len(constant)} such image(s))",
                                "check the export; blank images carry no information", "warning"))
    return problems
