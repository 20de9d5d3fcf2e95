"""Trained tiny segmentation runs shared by the segment tests (each trained once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from medlearn.tasks.segment.synthetic import make_synthetic_dataset
from tests.conftest import cli_exit_code

TINY_2D = {"network.channels": [8, 16, 32], "network.strides": [2, 2], "train.patch_size": [32, 32],
           "train.batch_size": 4, "train.steps_per_epoch": 25, "train.max_epochs": 4, "train.lr": 0.01,
           "train.augmentation": "light", "train.max_minutes": 2.0}
TINY_3D = {"network.channels": [4, 8], "network.strides": [2], "train.patch_size": [16, 16, 16],
           "train.batch_size": 2, "train.steps_per_epoch": 2, "train.max_epochs": 1}
AFFINE_3D = np.array([[0, 0, 1.5, -20], [-1.2, 0, 0, 30], [0, 1.0, 0, 5], [0, 0, 0, 1]])


def nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        section, name = key.split(".")
        out.setdefault(section, {})[name] = value
    return out


@pytest.fixture(scope="session")
def run2d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2D run trained through the CLI (``--plan`` file): 3 square cases with ROI masks, 1 test image,
    two members side by side (the small-2D-dataset default)."""
    root = tmp_path_factory.mktemp("seg2d")
    data = make_synthetic_dataset(root / "ds", n_cases=3, size=32, roi=True, n_test=1)
    plan = root / "plan.yaml"
    plan.write_text(yaml.safe_dump(nested({**TINY_2D, "train.ensemble": 2})))
    run = root / "run"
    code = cli_exit_code(["segment", "train", data, "-o", run, "--plan", plan, "--quiet", "--bootstrap", "50"])
    assert code == 0
    return data, run


@pytest.fixture(scope="session")
def run3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """A 3D run trained through the API: 2 NIfTI cases with an oblique affine, 1 test volume, one case held
    out for validation (``train.train_on_val_cases=false``)."""
    from medlearn.tasks.segment.model import Segmenter

    root = tmp_path_factory.mktemp("seg3d")
    data = make_synthetic_dataset(root / "ds", n_cases=2, size=16, ndim=3, affine=AFFINE_3D, n_test=1)
    overrides = {**TINY_3D, "train.val_fraction": 0.5, "train.train_on_val_cases": False}
    seg = Segmenter(overrides=overrides, n_boot=50).fit(data, root / "run")
    return data, root / "run", seg
