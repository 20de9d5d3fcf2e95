"""In-memory datasets and loaders for classification (images already normalised)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler


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
