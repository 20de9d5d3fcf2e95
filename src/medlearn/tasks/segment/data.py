"""Segmentation data: the labelled dataset (read and checked), a cache of preprocessed cases and a
random patch sampler over it.

:func:`load_segmentation_data` reads an MSD / nnU-Net raw dataset (:mod:`medlearn.data.msd`) and
refuses what cannot be learnt from (every mask empty) or, for evaluation, what the model cannot score
(other channels or classes). Cases are preprocessed once (:mod:`medlearn.imaging.preprocess`) and
saved as ``.npy`` in the run's cache folder; training reads them memory-mapped, so large 3D datasets
stream from disk and a resumed run skips preprocessing. Patches are cut in numpy (cheap) with nnU-Net's
foreground oversampling (Isensee et al. 2021): a fraction of patches is centred on a random foreground
voxel of a random class; the others on a random voxel inside the ROI (or anywhere without one).
Augmentation runs afterwards on whole batches in torch (:mod:`medlearn.tasks.segment.augment`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medlearn.data.images import ImageMeta, read_image
from medlearn.data.msd import MSDCase, MSDDataset, check_msd_dataset, load_case_image, load_msd_dataset
from medlearn.errors import InputError
from medlearn.imaging.preprocess import PreprocessedCase, preprocess_case
from medlearn.io import write_json
from medlearn.tasks.segment.augment import flip_rotate_sample
from medlearn.tasks.segment.plan import SegmentationPlan

_MAX_COORDS = 20_000  # sampled candidate centres kept per class per case


@dataclass
class SegmentationData:
    """A labelled MSD dataset: its cases (``labelsTr`` present), warnings to print before training,
    and the raw-image digests of the cases read so far (for "seen in training")."""

    dataset: MSDDataset
    cases: list[MSDCase]
    warnings: list[str] = field(default_factory=list)
    val_fraction: float | None = None  # train.val_fraction when the user set it (the split needs it first)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        return self.dataset.root

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cases]


def image_digest(image: np.ndarray) -> str:
    """A short content hash of a raw image ``(C, *S)`` (as float32): equal pixels, equal digest."""
    return hashlib.blake2b(np.ascontiguousarray(image, dtype=np.float32).tobytes(), digest_size=8).hexdigest()


def load_segmentation_data(source: str | Path, plan: SegmentationPlan | None = None,
                           overrides: dict[str, Any] | None = None) -> SegmentationData:
    """Read and check the MSD dataset at ``source`` (every file; the first error raises one line).

    Training (``plan`` None): a dataset whose every label mask is empty is refused (nothing to learn);
    some empty masks give a warning. Evaluation (``plan``: the model's): the dataset must have the
    model's channels and classes.
    """
    problems = check_msd_dataset(source)
    for problem in problems:
        if problem.severity == "error":
            raise InputError(problem.source, problem.problem, problem.fix or None)
    dataset = load_msd_dataset(source)
    data = SegmentationData(dataset, list(dataset.training))
    if plan is not None:
        _check_compatible(dataset, plan)
        return data
    empty = [p.source for p in problems if p.severity == "warning" and "mask is empty" in p.problem]
    if len(empty) == len(data.cases):
        raise InputError(dataset.root / "labelsTr", f"every label mask is empty (background only, {len(empty)} "
                         "case(s)): a model would learn nothing", "check the masks (a 0/255 export read as 0?) "
                         "or add cases with the structures to segment")
    if empty:
        data.warnings.append(f"{len(empty)} of {len(data.cases)} label masks are empty (background only), e.g. "
                             f"{empty[0]}: they teach the model little; check them if the structure is there")
    fraction = (overrides or {}).get("train.val_fraction")
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool):
        data.val_fraction = float(fraction)
    return data


def _check_compatible(dataset: MSDDataset, plan: SegmentationPlan) -> None:
    source = dataset.root / "dataset.json"
    if len(dataset.channel_names) != len(plan.channel_names):
        raise InputError(source, f"has {len(dataset.channel_names)} channels, the model was trained on "
                         f"{len(plan.channel_names)}", "evaluate on a dataset with the same channels")
    if dataset.num_classes != plan.num_classes:
        raise InputError(source, f"has {dataset.num_classes} classes, the model predicts {plan.num_classes}",
                         "evaluate on a dataset with the same labels")


@dataclass
class CachedCase:
    """A preprocessed case on disk: memory-mapped arrays plus candidate patch centres."""

    name: str
    image: np.ndarray  # (C, *spatial) float32 (memmap)
    label: np.ndarray  # (*spatial) uint8 (memmap)
    roi: np.ndarray | None  # (*spatial) bool
    fg_coords: dict[int, np.ndarray]  # class -> (N, ndim) voxel indices
    roi_coords: np.ndarray | None  # (N, ndim)
    digest: str = ""  # of the raw image (:func:`image_digest`)


def read_case(case: MSDCase, plan: SegmentationPlan) -> tuple[PreprocessedCase, ImageMeta, str]:
    """Read and preprocess one labelled case; returns it, the image's metadata and its raw digest."""
    image, meta = load_case_image(case)
    label = read_image(case.label, dtype=None)[0][0] if case.label is not None else None
    roi = read_image(case.roi, dtype=None)[0][0] if case.roi is not None else None
    return preprocess_case(case.name, image, meta.spacing, plan.preprocessing, label, roi), meta, image_digest(image)


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
        done = cache_dir / f"{case.name}.json"
        if not (done.exists() and json.loads(done.read_text()).get("key") == key):
            pre, _, digest = read_case(case, plan)
            np.save(f"{stem}_image.npy", pre.image)
            np.save(f"{stem}_label.npy", pre.label)
            if pre.roi is not None:
                np.save(f"{stem}_roi.npy", pre.roi)
            # written last, atomically: a case counts as cached once its .json exists
            write_json(done, {"key": key, "has_roi": pre.roi is not None, "digest": digest})
        saved = json.loads(done.read_text())
        has_roi = saved["has_roi"]
        image = np.load(f"{stem}_image.npy", mmap_mode="r")
        label = np.load(f"{stem}_label.npy", mmap_mode="r")
        roi = np.load(f"{stem}_roi.npy") if has_roi else None
        lab = np.asarray(label)
        fg = {k: _sample_coords(lab == k, rng) for k in range(1, plan.num_classes)}
        fg = {k: v for k, v in fg.items() if len(v)}
        roi_coords = _sample_coords(roi, rng) if roi is not None else None
        out.append(CachedCase(case.name, image, label, roi, fg, roi_coords, saved.get("digest", "")))
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


def patch_loader(cases: list[CachedCase], plan: SegmentationPlan, seed: int) -> DataLoader:
    """One epoch = ``steps_per_epoch`` batches of random patches (single process: in-memory crops are cheap)."""
    t = plan.train
    dataset = PatchDataset(cases, t.patch_size, t.steps_per_epoch * t.batch_size, t.foreground_oversampling, seed,
                           flip_rotate=t.augmentation != "none")
    return DataLoader(dataset, batch_size=t.batch_size, num_workers=0, pin_memory=False)


def whole_case_loader(cases: list[CachedCase]) -> DataLoader:
    return DataLoader(WholeCaseDataset(cases), batch_size=1, num_workers=0)


def random_batch(plan: SegmentationPlan, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of the plan's size (image, label, weight) for timing steps: noise and random labels."""
    gen = torch.Generator().manual_seed(seed)
    shape = (plan.train.batch_size, *plan.train.patch_size)
    image = torch.randn(plan.train.batch_size, plan.in_channels, *plan.train.patch_size, generator=gen)
    return image, torch.randint(0, plan.num_classes, shape, generator=gen), torch.ones(shape)
