"""Tiny registration fixtures: smooth random images (intensity gradients everywhere) and labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


def smooth_image(shape: tuple[int, ...], seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """A smooth random image in [0, 1] with structure at every voxel (so registration is well posed)."""
    rng = np.random.default_rng(seed)
    pad = 4
    big = ndimage.gaussian_filter(rng.standard_normal(tuple(n + 2 * pad for n in shape)), sigma)
    img = big[tuple(slice(pad, pad + n) for n in shape)]
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


def shifted(image: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The moving image for a known translation: ``fixed(x) = moving(x + t)``."""
    return ndimage.shift(image, t, order=3, mode="nearest").astype(np.float32)


def translation_tre(ddf: np.ndarray, t: np.ndarray, margin: int = 6) -> float:
    """Mean distance between a recovered field ``(ndim, *S)`` and a true translation ``t``, ``margin`` voxels
    away from the border."""
    inner = ddf[(slice(None), *[slice(margin, -margin)] * (ddf.ndim - 1))]
    return float(np.sqrt(((inner - t.reshape(-1, *[1] * (ddf.ndim - 1))) ** 2).sum(0)).mean())


@pytest.fixture
def image2d() -> np.ndarray:
    return smooth_image((32, 32), seed=0)


@pytest.fixture
def image3d() -> np.ndarray:
    return smooth_image((16, 16, 16), seed=1, sigma=1.5)


def write_pairs(folder, n: int = 6, shape: tuple[int, ...] = (32, 32), labels: bool = True, known: bool = True,
                seed: int = 0, extra_columns: dict | None = None, name: str = "pairs.csv"):
    """A CSV of ``n`` synthetic pairs (NIfTI images, label maps, known fields) made from one smooth image:
    ``fixed,moving,fixed_label,moving_label,displacement``; returns the CSV's path."""
    from pathlib import Path

    from medlearn.data.images import ImageMeta, write_image
    from medlearn.tasks.register.io import write_displacement_field
    from medlearn.tasks.register.synthetic import DeformationSettings, make_synthetic_pair

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = smooth_image(shape, seed=seed, sigma=2.0 if len(shape) == 2 else 1.5)
    label = (image > 0.45).astype(np.int32) + (image > 0.65)
    settings = DeformationSettings(max_displacement=2.0, smoothness=5, rotation_deg=3, scale=0.02, shear=0.0,
                                   translation=1.0, bias=0.05, gamma=0.05, noise=0.01)
    meta = ImageMeta("x", "nifti", tuple(shape), (1.0,) * len(shape), np.eye(4))
    columns = ["name", "fixed", "moving"] + (["fixed_label", "moving_label"] if labels else []) + (
        ["displacement"] if known else []) + list(extra_columns or {})
    rows = [",".join(columns)]
    for k in range(n):
        pair = make_synthetic_pair(image, label, seed=100 * seed + k, settings=settings, meta=meta)
        cells = {"name": f"p{k}", "fixed": f"f{k}.nii.gz", "moving": f"m{k}.nii.gz"}
        write_image(folder / f"f{k}.nii.gz", pair.fixed * 200, meta)
        write_image(folder / f"m{k}.nii.gz", pair.moving * 200, meta)
        if labels:
            write_image(folder / f"fl{k}.nii.gz", pair.fixed_label.astype(np.uint8), meta)
            write_image(folder / f"ml{k}.nii.gz", pair.moving_label.astype(np.uint8), meta)
            cells.update(fixed_label=f"fl{k}.nii.gz", moving_label=f"ml{k}.nii.gz")
        if known:
            write_displacement_field(folder / f"u{k}.nii.gz", pair.known_ddf, meta)
            cells["displacement"] = f"u{k}.nii.gz"
        for key, values in (extra_columns or {}).items():
            cells[key] = values[k] if isinstance(values, (list, tuple)) else values
        rows.append(",".join(str(cells.get(c, "")) for c in columns))
    (folder / name).write_text("\n".join(rows) + "\n")
    return folder / name
