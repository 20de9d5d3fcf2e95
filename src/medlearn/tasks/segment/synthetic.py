"""Tiny synthetic MSD datasets (a bright square or cube on noise) for tests, demos and smoke runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.data.images import ImageMeta, write_image
from medlearn.io import write_json


def make_synthetic_dataset(root: str | Path, n_cases: int = 3, size: int = 32, ndim: int = 2, seed: int = 0,
                           roi: bool = False, affine: np.ndarray | None = None, n_test: int = 0) -> Path:
    """Write an MSD dataset at ``root``: ``n_cases`` images with one square (2D, PNG) or cube (3D, NIfTI).

    The object (label 1) is brighter than the noisy background; with ``roi`` each case gets a
    ``roiTr`` mask covering all but a 2-voxel frame. ``affine`` (3D) is written into every NIfTI.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ending = ".png" if ndim == 2 else ".nii.gz"
    aff = np.eye(4) if affine is None else np.asarray(affine, float)
    meta = ImageMeta("synthetic", "nifti" if ndim == 3 else "png", (size,) * ndim, (1.0,) * ndim, aff)

    def one(name: str, folder: str, label_folder: str | None, roi_folder: str) -> None:
        side = int(rng.integers(size // 4, size // 2))
        start = rng.integers(2, size - side - 2, ndim)
        label = np.zeros((size,) * ndim, np.uint8)
        label[tuple(slice(s, s + side) for s in start)] = 1
        image = rng.normal(60, 12, label.shape) + 120 * label
        image = np.clip(image, 0, 255).astype(np.uint8 if ndim == 2 else np.float32)
        write_image(root / folder / f"{name}_0000{ending}", image[None], meta)
        if label_folder:
            write_image(root / label_folder / f"{name}{ending}", label[None], meta)
        if roi:
            mask = np.zeros_like(label)
            mask[tuple(slice(2, size - 2) for _ in range(ndim))] = 1
            write_image(root / roi_folder / f"{name}{ending}", mask[None], meta)

    for i in range(n_cases):
        one(f"case_{i:03d}", "imagesTr", "labelsTr", "roiTr")
    for i in range(n_test):
        one(f"test_{i:03d}", "imagesTs", None, "roiTs")
    write_json(root / "dataset.json", {
        "name": root.name, "channel_names": {"0": "MR" if ndim == 3 else "grey"},
        "labels": {"background": 0, "square": 1}, "numTraining": n_cases, "file_ending": ending})
    return root
