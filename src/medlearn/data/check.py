"""``medlearn data check``: every problem in a dataset, not just the first.

A folder with any part of the MSD / nnU-Net layout (``dataset.json``, ``imagesTr/``, ``labelsTr/`` ...) is
checked as one (:func:`medlearn.data.msd.check_msd_dataset`); anything else as a classification dataset.

Each image is read on its own so one bad file does not hide the others; then dataset-level checks
(label set, splits, patient leaks, imbalance) run on what could be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.data.classification import (
    SPLITS,
    check_classification_data,
    load_classification_data,
    read_table,
)
from medlearn.data.images import IMAGE_SUFFIXES, image_suffix, read_image
from medlearn.data.problems import Problem
from medlearn.errors import InputError


def check_dataset(path: str | Path, label_columns: Sequence[str] | None = None) -> list[Problem]:
    """Problems in any supported dataset (MSD segmentation layout, classification CSV/folder/npz)."""
    path = Path(path)
    if not path.exists():
        return [Problem(str(path), "not found")]
    from medlearn.data import msd

    if msd.looks_like_msd(path):  # any part of the layout: a missing imagesTr/ is then an error, not another layout
        return msd.check_msd_dataset(path)
    problems: list[Problem] = []
    if path.suffix.lower() in (".csv", ".tsv"):
        problems += _check_table_rows(path)
    elif path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES)
        problems += _check_files(images)
    if any(p.severity == "error" for p in problems):
        return problems
    try:
        data = load_classification_data(path, label_columns=label_columns)
    except InputError as exc:
        return problems + [Problem(exc.source or str(path), exc.problem, exc.hint or "")]
    return problems + check_classification_data(data)


def _check_table_rows(path: Path, image_column: str = "image") -> list[Problem]:
    """Row by row: missing/unreadable/NaN images, mixed sizes or channels, bad split values."""
    df = read_table(path)
    if image_column not in df.columns:
        return [Problem(str(path), f"no '{image_column}' column (columns: {', '.join(df.columns)})",
                        "name the image path column 'image'")]
    problems: list[Problem] = []
    files = []
    for row, rel in enumerate(df[image_column], start=2):
        if not isinstance(rel, str) or not rel.strip():
            problems.append(Problem(f"{path}:{row}", "empty image path"))
        else:
            files.append(path.parent / rel)
    problems += _check_files(files)
    if "split" in df.columns:
        bad = sorted({str(v) for v in df["split"].dropna()} - set(SPLITS))
        if bad:
            problems.append(Problem(str(path), f"split column has values {bad}", "use train, val or test"))
    if "label" in df.columns and df["label"].isna().any():
        rows = (np.flatnonzero(df["label"].isna().to_numpy()) + 2).tolist()
        problems.append(Problem(str(path), f"empty label in row(s) {rows[:10]}", "fill or drop these rows"))
    return problems


def _check_files(files: list[Path]) -> list[Problem]:
    """Each file on its own: missing, unreadable, NaN, or a size/channel count unlike the first image."""
    problems: list[Problem] = []
    reference: tuple[str, tuple[int, ...]] | None = None
    for file in files:
        try:
            array, _ = read_image(file)
        except InputError as exc:
            problems.append(Problem(exc.source or str(file), exc.problem, exc.hint or ""))
            continue
        if reference is None:
            reference = (str(file), array.shape)
        elif array.shape[0] != reference[1][0]:
            problems.append(Problem(str(file), f"{array.shape[0]} channel(s), but {reference[0]} has {reference[1][0]}",
                                    "convert all images to the same number of channels"))
        elif array.shape != reference[1]:
            problems.append(Problem(str(file), f"size {array.shape[1:]}, but {reference[0]} has {reference[1][1:]}",
                                    "resize, or train with --set data.resize=[H,W]", "warning"))
    return problems
