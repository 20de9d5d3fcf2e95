"""Collect images to predict: files, folders, CSV tables (``image`` column) or ``.npz`` arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.data.classification import load_medmnist_npz, read_table, resize_image
from medlearn.data.images import IMAGE_SUFFIXES, image_suffix, read_image
from medlearn.errors import InputError
from medlearn.tasks.classify.plan import ClassificationPlan


def load_inputs(paths: Sequence[str | Path], plan: ClassificationPlan
                ) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Raw images ``(N, C, *spatial)`` (resized to the plan's input), their ids and patient ids (or None)."""
    arrays: list[np.ndarray] = []
    ids: list[str] = []
    patients: list[str] = []
    any_patient = False
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "input not found")
        if path.suffix.lower() == ".npz":
            data = load_medmnist_npz(path)
            arrays += list(data.images)
            ids += [f"{path.name}:{i}" for i in data.ids]
            patients += [""] * len(data)
        elif path.suffix.lower() in (".csv", ".tsv"):
            df = read_table(path)
            if "image" not in df.columns:
                raise InputError(path, f"no 'image' column (columns: {', '.join(df.columns)})")
            for rel in df["image"]:
                arrays.append(read_image(path.parent / rel)[0])
                ids.append(str(rel))
            if "patient_id" in df.columns:
                any_patient = True
                patients += list(df["patient_id"].fillna("").astype(str))
            else:
                patients += [""] * len(df)
        elif path.is_dir() and not any(p.suffix.lower() == ".dcm" for p in path.iterdir()):
            files = sorted(p for p in path.rglob("*") if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES)
            if not files:
                raise InputError(path, "folder holds no images")
            for f in files:
                arrays.append(read_image(f)[0])
                ids.append(str(f))
                patients.append("")
        else:
            arrays.append(read_image(path)[0])
            ids.append(str(path))
            patients.append("")
    images = [_fit_to_plan(a, plan, i) for a, i in zip(arrays, ids, strict=True)]
    return np.stack(images).astype(np.float32), ids, (np.asarray(patients) if any_patient else None)


def _fit_to_plan(image: np.ndarray, plan: ClassificationPlan, source: str) -> np.ndarray:
    if image.shape[0] != plan.in_channels:
        raise InputError(source, f"has {image.shape[0]} channel(s); the model expects {plan.in_channels}")
    if image.ndim - 1 != plan.spatial_dims:
        raise InputError(source, f"is {image.ndim - 1}D; the model expects {plan.spatial_dims}D images")
    if list(image.shape[1:]) != list(plan.input_size):
        if plan.data.resize is None:
            raise InputError(source, f"has size {list(image.shape[1:])}; the model expects {plan.input_size}",
                             "resize the image (the model was trained without --set data.resize)")
        image = resize_image(image, plan.input_size)
    return image
