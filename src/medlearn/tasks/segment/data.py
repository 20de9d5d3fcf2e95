"""Training data: a cache of preprocessed cases and a random patch sampler over it.

Cases are preprocessed once (:mod:`medlearn.tasks.segment.preprocess`) and saved as ``.npy`` in the
run's ``cache/`` folder; training reads them memory-mapped, so large 3D datasets stream from disk
and a resumed run skips preprocessing. Patches are cut in numpy (cheap) with nnU-Net's foreground
oversampling (Isensee et al. 2021): a fraction of patches is centred on a random foreground voxel of
a random class; the others on a random voxel inside the ROI (or anywhere without one).
Augmentation runs afterwards on whole batches in torch (:mod:`medlearn.tasks.segment.augment`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medlearn.data.images import read_image
from medlearn.data.msd import MSDCase, load_case_image
from medlearn.tasks.segment.augment import flip_rotate_sample
from medlearn.tasks.segment.plan import SegmentationPlan
from medlearn.tasks.segment.preprocess import PreprocessedCase, preprocess_case

_MAX_COORDS = 20_000  # sampled candidate centres kept per class per case


@dataclass
class CachedCase:
    """A preprocessed case on disk: memory-mapped arrays plus candidate patch centres."""

    name: str
    image: np.ndarray  # (C, *spatial) float32 (memmap)
    label: np.ndarray  # (*spatial) uint8 (memmap)
    roi: np.ndarray | None  # (*spatial) bool
    fg_coords: dict[int, np.ndarray]  # class -> (N, ndim) voxel indices
    roi_coords: np.ndarray | None  # (N, ndim)


def read_case(case: MSDCase, plan: SegmentationPlan) -> tuple[PreprocessedCase, object]:
    """Read and preprocess one labelled case; returns it and the image's metadata."""
    image, meta = load_case_image(case)
    label = read_image(case.label, dtype=None)[0][0] if case.label is not None else None
    roi = read_image(case.roi, dtype=None)[0][0] if case.roi is not None else None
    return preprocess_case(case.name, image, meta.spacing, plan, label, roi), meta


def _sample_coords(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    coords = np.argwhere(mask)
    if len(coords) > _MAX_COORDS:
        coords = coords[rng.choice(len(coords), _MAX_COORDS, replace=False)]
    return coords.astype(np.int32)


def build_cache(cases: list[MSDCase], plan: SegmentationPlan, cache_dir: Path, seed: int = 0) -> list[CachedCase]:
    """Preprocess ``cases`` into ``cache_dir`` (skipping ones already there) and open them memory-mapped."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    key = json.dumps(plan.preprocessing.__dict__, sort_keys=True, default=str)
    out = []
    for case in cases:
        stem = cache_dir / case.name
        done = stem.with_suffix(".json")
        if not (done.exists() and json.loads(done.read_text()).get("key") == key):
            pre, _ = read_case(case, plan)
            np.save(f"{stem}_image.npy", pre.image)
            np.save(f"{stem}_label.npy", pre.label)
            if pre.roi is not None:
                np.save(f"{stem}_roi.npy", pre.roi)
            done.write_text(json.dumps({"key": key, "has_roi": pre.roi is not None}))
        has_roi = json.loads(done.read_text())["has_roi"]
        image = np.load(f"{stem}_image.npy", mmap_mode="r")
        label = np.load(f"{stem}_label.npy", mmap_mode="r")
        roi = np.load(f"{stem}_roi.npy") if has_roi else None
        lab = np.asarray(label)
        fg = {k: _sample_coords(lab == k, rng) for k in range(1, plan.num_classes)}
        fg = {k: v for k, v in fg.items() if len(v)}
        roi_coords = _sample_coords(roi, rng) if roi is not None else None
        out.append(CachedCase(case.name, image, label, roi, fg, roi_coords))
    return out


def crop_patch(case: CachedCase, centre: np.ndarray, patch: tuple[int, ...]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a ``patch``-sized window centred at ``centre``, zero-padded where it leaves the image.

    Returns image ``(C, *patch)`` float32, label ``(*patch)`` int64 and ROI weight ``(*patch)`` float32
    (1 inside the image and ROI, 0 in padding or outside the ROI).
    """
    shape = case.label.shape
    src, dst = [], []
    for c, p, n in zip(centre, patch, shape, strict=True):
        start = int(c) - p // 2
        start = min(max(start, -(p // 2)), n - p + p // 2) if n >= p else (n - p) // 2
        lo, hi = max(start, 0), min(start + p, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    image = np.zeros((case.image.shape[0], *patch), np.float32)
    label = np.zeros(patch, np.int64)
    weight = np.zeros(patch, np.float32)
    image[(slice(None), *dst)] = case.image[(slice(None), *src)]
    label[tuple(dst)] = case.label[tuple(src)]
    weight[tuple(dst)] = case.roi[tuple(src)] if case.roi is not None else 1.0
    return image, label, weight


class PatchDataset(Dataset):
    """``length`` random patches per epoch: ``(image (C,*patch), label (*patch), weight (*patch))``.

    ``flip_rotate``: random flips and 90-degree rotations here, per sample (nearly free: the crop is
    a copy anyway), instead of on the batch.
    """

    def __init__(self, cases: list[CachedCase], patch_size: list[int], length: int,
                 foreground_oversampling: float = 0.33, seed: int = 0, flip_rotate: bool = False) -> None:
        if not cases:
            raise ValueError("PatchDataset needs at least one case")
        self.cases = cases
        self.patch = tuple(int(p) for p in patch_size)
        self.length = int(length)
        self.fg = float(foreground_oversampling)
        self.rng = np.random.default_rng(seed)
        self.flip_rotate = flip_rotate

    def __len__(self) -> int:
        return self.length

    def _centre(self, case: CachedCase) -> np.ndarray:
        if case.fg_coords and self.rng.random() < self.fg:
            cls = list(case.fg_coords)[self.rng.integers(len(case.fg_coords))]
            coords = case.fg_coords[cls]
            return coords[self.rng.integers(len(coords))]
        if case.roi_coords is not None and len(case.roi_coords):
            return case.roi_coords[self.rng.integers(len(case.roi_coords))]
        return np.array([self.rng.integers(n) for n in case.label.shape])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        case = self.cases[self.rng.integers(len(self.cases))]
        image, label, weight = crop_patch(case, self._centre(case), self.patch)
        if self.flip_rotate:
            image, label, weight = flip_rotate_sample(image, label, weight, self.rng)
        return torch.from_numpy(image), torch.from_numpy(label), torch.from_numpy(weight)


class WholeCaseDataset(Dataset):
    """Whole preprocessed cases for validation: ``(image (C,*S), label (*S), weight (*S))``."""

    def __init__(self, cases: list[CachedCase]) -> None:
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        case = self.cases[index]
        weight = case.roi.astype(np.float32) if case.roi is not None else np.ones(case.label.shape, np.float32)
        return (torch.from_numpy(np.array(case.image, np.float32)), torch.from_numpy(np.array(case.label, np.int64)),
                torch.from_numpy(weight))
