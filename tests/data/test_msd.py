"""MSD / nnU-Net raw layout: import from loose folders, integrity checks, fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlearn.data.images import ImageMeta, read_image, write_image
from medlearn.data.msd import (
    check_msd_dataset,
    fingerprint_msd_dataset,
    import_pairs,
    is_msd_dataset,
    load_msd_dataset,
)
from medlearn.errors import InputError
from medlearn.tasks.segment.synthetic import make_synthetic_dataset


def _errors(problems, severity="error"):
    return [p for p in problems if p.severity == severity]


def _edit_json(root: Path, **changes) -> None:
    meta = json.loads((root / "dataset.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (root / "dataset.json").write_text(json.dumps(meta))


def test_valid_dataset_has_no_problems(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", roi=True)
    assert is_msd_dataset(root)
    assert check_msd_dataset(root) == []
    ds = load_msd_dataset(root)
    assert [c.name for c in ds.training] == ["case_000", "case_001", "case_002"]
    assert all(c.roi is not None for c in ds.training)


def test_mask_0_255_is_reported(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds")
    label = root / "labelsTr" / "case_001.png"
    Image.fromarray((np.array(Image.open(label)) * 255).astype(np.uint8)).save(label)
    problems = _errors(check_msd_dataset(root))
    assert len(problems) == 1
    assert problems[0].source == str(label) and "0/255" in problems[0].problem


def test_unexpected_label_value_and_nonconsecutive_labels(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds")
    label = root / "labelsTr" / "case_000.png"
    Image.fromarray((np.array(Image.open(label)) * 3).astype(np.uint8)).save(label)
    assert any("unexpected label value" in p.problem and p.source == str(label) for p in check_msd_dataset(root))
    _edit_json(root, labels={"background": 0, "a": 1, "b": 3})
    assert any("not consecutive" in p.problem for p in check_msd_dataset(root))


@pytest.mark.parametrize("key", ["channel_names", "labels", "numTraining", "file_ending"])
def test_missing_dataset_json_key(tmp_path, key):
    root = make_synthetic_dataset(tmp_path / "ds")
    _edit_json(root, **{key: None})
    problems = check_msd_dataset(root)
    assert len(problems) == 1 and key in problems[0].problem and problems[0].source.endswith("dataset.json")
    with pytest.raises(InputError, match=key):
        load_msd_dataset(root)


def test_missing_channel_suffix_and_orphan_label(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds")
    (root / "imagesTr" / "case_000_0000.png").rename(root / "imagesTr" / "case_000.png")
    problems = check_msd_dataset(root)
    assert any("_0000" in p.problem and p.source.endswith("case_000.png") for p in problems)
    assert any("no matching image" in p.problem and p.source.endswith("labelsTr/case_000.png") for p in problems)


def test_shape_mismatch_and_empty_mask(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "labelsTr" / "case_001.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "labelsTr" / "case_002.png")
    problems = check_msd_dataset(root)
    assert any("shape" in p.problem and p.source.endswith("case_001.png") for p in _errors(problems))
    assert any("empty" in p.problem and p.source.endswith("case_002.png") for p in _errors(problems, "warning"))


def test_nifti_geometry_mismatch_and_corrupt_file(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", ndim=3, size=16)
    label_path = root / "labelsTr" / "case_000.nii.gz"
    label, meta = read_image(label_path, dtype=None)
    shifted = ImageMeta(meta.path, "nifti", meta.spatial_shape, meta.spacing, meta.affine @ np.diag([2, 1, 1, 1]))
    write_image(label_path, label.astype(np.uint8), shifted)
    corrupt = root / "imagesTr" / "case_001_0000.nii.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    problems = check_msd_dataset(root)
    assert any("geometry" in p.problem and p.source == str(label_path) for p in problems)
    assert any(p.source == str(corrupt) and "cannot read" in p.problem for p in problems)


def test_import_pairs_drive_like_folders(tmp_path):
    images, masks, fov = tmp_path / "images", tmp_path / "1st_manual", tmp_path / "mask"
    for d in (images, masks, fov):
        d.mkdir()
    rng = np.random.default_rng(0)
    for n in (21, 22):
        Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(images / f"{n}_training.tif")
        vessel = np.zeros((24, 30), np.uint8)
        vessel[5:9, :] = 255
        Image.fromarray(vessel).save(masks / f"{n}_manual1.gif")
        Image.fromarray(np.full((24, 30), 255, np.uint8)).save(fov / f"{n}_training_mask.gif")
    out = import_pairs(images, masks, tmp_path / "ds", roi=fov)
    assert check_msd_dataset(out) == []
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".png" and len(meta["channel_names"]) == 3
    label = np.array(Image.open(out / "labelsTr" / "case_021.png"))
    assert set(np.unique(label)) == {0, 1} and label.shape == (24, 30) and label[5:9].all()
    assert (out / "roiTr" / "case_022.png").exists()
    with pytest.raises(InputError, match="already exists"):
        import_pairs(images, masks, tmp_path / "ds", roi=fov)


def test_import_pairs_unmatched_mask_names_the_file(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(images / "1.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "2.png")
    with pytest.raises(InputError, match="2.png"):
        import_pairs(images, masks, tmp_path / "ds")


def test_fingerprint(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", n_cases=2, roi=True)
    fp = fingerprint_msd_dataset(root)
    assert fp["num_training"] == 2 and fp["ndim"] == 2 and fp["has_roi"]
    assert fp["median_shape"] == [32.0, 32.0] and fp["median_spacing"] == [1.0, 1.0]
    labels = [np.array(Image.open(root / "labelsTr" / f"case_{i:03d}.png"))[2:30, 2:30] for i in range(2)]
    expected = float(np.mean(np.concatenate([lab.ravel() for lab in labels])))
    assert fp["label_fractions"]["square"] == pytest.approx(expected)
    assert fp["intensity"]["0"]["mean"] > 0
