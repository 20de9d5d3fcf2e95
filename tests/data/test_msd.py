"""MSD / nnU-Net raw layout: import from loose folders, integrity checks, fingerprint."""

from __future__ import annotations

import json
import shutil
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


def test_data_check_passes_an_msd_dataset_only_with_images_tr(tmp_path):
    from medlearn.data.check import check_dataset

    root = make_synthetic_dataset(tmp_path / "ds")
    assert check_dataset(root) == []
    shutil.rmtree(root / "imagesTr")
    problems = _errors(check_dataset(root))
    assert any("imagesTr" in p.problem and p.source == str(root / "imagesTr") for p in problems)
    with pytest.raises(InputError, match="imagesTr"):
        load_msd_dataset(root)


def test_extra_channel_files_are_reported(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", n_cases=2)
    _edit_json(root, channel_names={"0": "a", "1": "b"})
    for i in range(2):
        for c in (1, 2):
            shutil.copy(root / "imagesTr" / f"case_00{i}_0000.png", root / "imagesTr" / f"case_00{i}_000{c}.png")
    problems = _errors(check_msd_dataset(root))
    extra = [p for p in problems if "beyond the 2 channel(s)" in p.problem]
    assert [Path(p.source).name for p in extra] == ["case_000_0002.png", "case_001_0002.png"]


def _save(folder: Path, name: str, array: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


def test_import_pairs_pairs_left_and_right_eyes_by_the_longest_common_stem(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    for n in (1, 2):
        for eye, row in (("L", 3), ("R", 9)):
            _save(images, f"Image_{n:02d}{eye}.jpg", rng.integers(0, 255, (16, 20, 3), dtype=np.uint8))
            mask = np.zeros((16, 20), np.uint8)
            mask[row, :] = 255  # each eye its own mask: a wrong pairing shows
            _save(masks, f"Image_{n:02d}{eye}_1stHO.png", mask)
    out = import_pairs(images, masks, tmp_path / "ds")
    assert check_msd_dataset(out) == []
    printed = capsys.readouterr().out
    assert "paired Image_01L.jpg + Image_01L_1stHO.png" in printed and printed.count("paired") == 4
    for n in (1, 2):
        assert np.array(Image.open(out / "labelsTr" / f"Image_{n:02d}L.png"))[3].all()
        assert np.array(Image.open(out / "labelsTr" / f"Image_{n:02d}R.png"))[9].all()
    assert (out / "imagesTr" / "Image_01R_0000.png").exists()  # JPEG images stored lossless


def test_import_pairs_with_identical_names_prints_nothing_and_refuses_ambiguity(tmp_path, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for n in (1, 10):
        _save(images, f"{n}.png", np.zeros((8, 8), np.uint8))
        _save(masks, f"{n}.png", np.full((8, 8), 255, np.uint8))
    import_pairs(images, masks, tmp_path / "ds")
    assert "paired" not in capsys.readouterr().out  # "1" pairs with "1", never with "10"
    _save(masks, "1_copy.png", np.zeros((8, 8), np.uint8))
    _save(masks, "1_also.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="two mask files match it equally"):
        import_pairs(images, masks, tmp_path / "ds2")


def test_a_failed_import_leaves_no_partial_layout(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    _save(images, "21_training.png", np.zeros((8, 8), np.uint8))
    _save(masks, "21_manual1.png", np.full((8, 8), 255, np.uint8))
    _save(images, "22_training.png", np.zeros((8, 8), np.uint8))
    _save(masks, "22_manual1.png", np.array([0, 7, 200, 0] * 16, np.uint8).reshape(8, 8))  # not a mask: fails late
    with pytest.raises(InputError, match="22_manual1.png"):
        import_pairs(images, masks, tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks"]
