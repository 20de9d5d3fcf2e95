"""Classification data: reading a dataset for training or evaluation, checks that refuse degenerate
labels, in-memory datasets and loaders (images already normalised), image hashes for "seen in training".

Images are ``(N, C, X, Y[, Z])`` float32 in the package's axis order (see :mod:`medlearn.data.images`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from medlearn.data.classification import ClassificationData, load_classification_data, resize_image
from medlearn.errors import InputError


def load_data(source: str, options: dict[str, Any], resize: Sequence[int] | None = None,
              label_names: Sequence[str] | None = None, task: str | None = None) -> ClassificationData:
    """A labelled dataset in any layout of :mod:`medlearn.data.classification` (``options``: ``label_columns``,
    ``task``, ``classes``, ``allow_outside_paths``); ``label_names``/``task`` fix the label set (evaluation)."""
    classes = label_names or options.get("classes")
    kind = task if task not in (None, "binary") else options.get("task")
    return load_classification_data(source, label_columns=options.get("label_columns"), task=kind,
                                    classes=classes, resize=resize,
                                    allow_outside=bool(options.get("allow_outside_paths")))


def check_trainable(data: ClassificationData) -> None:
    """Refuse labels a classifier cannot learn from: a single class (or a label with one value)."""
    counts = data.class_counts()
    if data.task == "multilabel":
        observed = ~np.isnan(data.labels)
        positives = np.nansum(data.labels, axis=0)
        constant = [n for n, p, o in zip(data.label_names, positives, observed.sum(0), strict=True) if p in (0, o)]
        if len(constant) == len(data.label_names):
            raise InputError(data.source, "every label has a single value (all 0 or all 1)",
                             "a classifier needs both values of at least one label")
        return
    present = [n for n, c in zip(data.label_names, counts, strict=True) if c > 0]
    if len(present) < 2:
        raise InputError(data.source, f"only one class present ({present[0] if present else 'none'}): nothing to "
                         "learn", "give images of at least two classes")


def resize_all(images: np.ndarray, size: Sequence[int]) -> np.ndarray:
    if list(images.shape[2:]) == list(size):
        return images
    return np.stack([resize_image(im, size) for im in images]).astype(np.float32)


def image_hashes(images: np.ndarray) -> list[str]:
    """A short content hash per image ``(N, C, *S)`` (raw pixels as float32): equal pixels, equal hash."""
    return [hashlib.blake2b(np.ascontiguousarray(im, dtype=np.float32).tobytes(), digest_size=8).hexdigest()
            for im in images]


class ImageArrayDataset(Dataset):
    """Items ``(image (C, *spatial) float32 tensor, label)``. Augmentation happens per batch in the
    module (``medlearn.transforms.batch``), not here."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.labels = torch.from_numpy(np.asarray(labels))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def oversampling_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights so each class is drawn equally often (labels ``(N,)`` class indices)."""
    counts = np.bincount(labels)
    return (1.0 / counts[labels]).astype(np.float64)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency loss weights normalised to mean 1 (King & Zeng 2001 style re-weighting)."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / num_classes, 0.0)
    return weights / weights[counts > 0].mean()


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int,
                sample_weights: np.ndarray | None = None) -> DataLoader:
    """A single-process loader (2-core CPUs gain nothing from workers for in-memory arrays)."""
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if sample_weights is not None:
        sampler = WeightedRandomSampler(torch.as_tensor(sample_weights), num_samples=len(sample_weights),
                                        replacement=True, generator=generator)
        shuffle = False
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, generator=generator,
                      num_workers=0, drop_last=False)
