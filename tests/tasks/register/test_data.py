"""Reading registration datasets (Learn2Reg json, CSV, atlas), resampling, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlearn.data.images import ImageMeta, write_image
from medlearn.errors import InputError
from medlearn.tasks.register.data import (
    PairSource,
    atlas_pairs,
    load_pair,
    read_learn2reg,
    read_pairs_csv,
    read_registration_data,
)
from tests.tasks.register.conftest import smooth_image

META3 = ImageMeta("x", "nifti", (16, 16, 12), (1.0, 1.0, 1.0), np.eye(4))


def _volume(root: Path, rel: str, array: np.ndarray, meta: ImageMeta = META3) -> str:
    write_image(root / rel, array[None], meta)
    return "./" + rel


def _labels(img: np.ndarray) -> np.ndarray:
    return (img > 0.45).astype(np.uint8) + (img > 0.65).astype(np.uint8)


def _learn2reg(root: Path, pairing: str = "paired", n_cases: int = 3) -> Path:
    """A tiny Learn2Reg dataset: per case a fixed _0000 and moving _0001 volume, labels, keypoints."""
    training = []
    for case in range(n_cases):
        for k in range(2):
            img = smooth_image(META3.spatial_shape, seed=10 * case + k)
            name = f"TINY_{case:04d}_{k:04d}"
            entry = {"image": _volume(root, f"imagesTr/{name}.nii.gz", img),
                     "label": _volume(root, f"labelsTr/{name}.nii.gz", _labels(img))}
            kp = root / "keypointsTr" / f"{name}.csv"
            kp.parent.mkdir(parents=True, exist_ok=True)
            kp.write_text("\n".join(f"{3 + i + k},{4 + i},{5}" for i in range(4)) + "\n")
            entry["keypoints"] = f"./keypointsTr/{name}.csv"
            training.append(entry)
    data = {
        "name": "TINY", "pairings": pairing, "modality": {"0": "MR", "1": "MR"},
        "tensorImageShape": {"0": list(META3.spatial_shape)}, "numTraining": len(training), "training": training,
        "test": [],
        "training_paired_images": [{"fixed": f"./imagesTr/TINY_{c:04d}_0000.nii.gz",
                                    "moving": f"./imagesTr/TINY_{c:04d}_0001.nii.gz"} for c in range(n_cases - 1)]
        if pairing == "paired" else [],
        "registration_val": [{"fixed": f"./imagesTr/TINY_{n_cases - 1:04d}_0000.nii.gz",
                              "moving": f"./imagesTr/TINY_{n_cases - 1:04d}_0001.nii.gz"}],
        "registration_test": [],
    }
    (root / "TINY_dataset.json").write_text(json.dumps(data, indent=1))
    return root


def test_learn2reg_paired_round_trip(tmp_path):
    root = _learn2reg(tmp_path)
    train = read_learn2reg(root, "train")
    assert train.layout == "learn2reg" and train.pairing == "paired" and len(train.pairs) == 2
    assert train.same_modality and train.has_labels and train.tensor_shape == (16, 16, 12)
    pair = load_pair(train.pairs[0])
    assert pair.fixed.shape == (1, 16, 16, 12) and pair.moving.shape == (1, 16, 16, 12)
    assert pair.fixed_label.shape == (1, 16, 16, 12) and pair.label_ids == [1, 2]
    assert pair.fixed_keypoints.shape == (4, 3)
    assert np.allclose(pair.moving_keypoints[:, 0] - pair.fixed_keypoints[:, 0], 1)
    assert not pair.resampled and pair.fixed_modality == "MR"
    val = read_learn2reg(root / "TINY_dataset.json", "val")
    assert [p.name for p in val.pairs] == ["TINY_0002_0000<-TINY_0002_0001"]
    with pytest.raises(InputError, match="no registration_test pairs"):
        read_learn2reg(root, "test")


def test_learn2reg_unpaired_and_paired_without_pair_list(tmp_path):
    root = _learn2reg(tmp_path, pairing="unpaired", n_cases=3)
    train = read_learn2reg(root, "train", n_train_pairs=5, seed=1)
    assert len(train.pairs) == 5 and train.pairing == "unpaired"
    used = {p.fixed.name for p in train.pairs} | {p.moving.name for p in train.pairs}
    assert not any(name.startswith("TINY_0002") for name in used)  # validation images stay out of training
    assert all(p.fixed != p.moving for p in train.pairs)
    assert [p.name for p in read_learn2reg(root, "train", 5, seed=1).pairs] == [p.name for p in train.pairs]
    data = json.loads((root / "TINY_dataset.json").read_text())
    data["pairings"] = "paired"
    data.pop("training_paired_images")
    (root / "TINY_dataset.json").write_text(json.dumps(data))
    grouped = read_learn2reg(root, "train")
    assert {(p.fixed.name, p.moving.name) for p in grouped.pairs} == {
        (f"TINY_{c:04d}_0000.nii.gz", f"TINY_{c:04d}_0001.nii.gz") for c in range(3)}


def test_learn2reg_multimodal_and_bad_json(tmp_path):
    root = _learn2reg(tmp_path)
    data = json.loads((root / "TINY_dataset.json").read_text())
    data["modality"] = {"0": "MR", "1": "CT"}
    (root / "TINY_dataset.json").write_text(json.dumps(data))
    ds = read_learn2reg(root)
    assert not ds.same_modality and ds.pairs[0].moving_modality == "CT"
    data["tensorImageShape"] = {"0": [16, 16, 13]}
    (root / "TINY_dataset.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="contradicts tensorImageShape"):
        load_pair(read_learn2reg(root).pairs[0])
    (root / "TINY_dataset.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read dataset json"):
        read_learn2reg(root)
    with pytest.raises(InputError, match=r"no dataset.json"):
        read_learn2reg(tmp_path / "imagesTr")


def test_csv_and_atlas_layouts(tmp_path):
    names = []
    for k in range(3):
        img = smooth_image(META3.spatial_shape, seed=k)
        _volume(tmp_path, f"img{k}.nii.gz", img)
        _volume(tmp_path, f"lab{k}.nii.gz", _labels(img))
        names.append(f"img{k}.nii.gz")
    (tmp_path / "pairs.csv").write_text("fixed,moving,fixed_label,moving_label\n"
                                        "img0.nii.gz,img1.nii.gz,lab0.nii.gz,lab1.nii.gz\n"
                                        "img0.nii.gz,img2.nii.gz,,\n")
    ds = read_registration_data(tmp_path / "pairs.csv")
    assert ds.layout == "csv" and len(ds.pairs) == 2 and not ds.has_labels
    assert load_pair(ds.pairs[0]).label_ids == [1, 2] and load_pair(ds.pairs[1]).fixed_label is None
    atlas = atlas_pairs([tmp_path / "img1.nii.gz", tmp_path / "img2.nii.gz"], tmp_path / "img0.nii.gz",
                        tmp_path / "lab0.nii.gz", [tmp_path / "lab1.nii.gz", tmp_path / "lab2.nii.gz"])
    assert atlas.pairing == "atlas" and all(p.fixed.name == "img0.nii.gz" for p in atlas.pairs)
    assert load_pair(atlas.pairs[1]).moving_label is not None
    from medlearn.tasks.register.io import write_displacement_field

    known = np.random.default_rng(0).normal(0, 1, (3, *META3.spatial_shape)).astype(np.float32)
    write_displacement_field(tmp_path / "u.nii.gz", known, META3)
    (tmp_path / "known.csv").write_text("name,fixed,moving,displacement\nk,img0.nii.gz,img1.nii.gz,u.nii.gz\n")
    pair = load_pair(read_pairs_csv(tmp_path / "known.csv").pairs[0])
    assert pair.name == "k" and np.allclose(pair.known_ddf, known, atol=1e-5)
    (tmp_path / "bad.csv").write_text("image,label\nimg0.nii.gz,lab0.nii.gz\n")
    with pytest.raises(InputError, match="no 'fixed' column"):
        read_pairs_csv(tmp_path / "bad.csv")


def test_moving_on_another_grid_is_resampled(tmp_path):
    """A moving image at 2 mm of the same world region lands on the fixed 1 mm grid, labels by nearest."""
    fixed = np.zeros((24, 24, 12), np.float32)
    fixed[6:18, 8:16, 3:9] = 1.0
    meta_f = ImageMeta("f", "nifti", fixed.shape, (1.0, 1.0, 1.0), np.eye(4))
    aff_m = np.diag([2.0, 2.0, 2.0, 1.0])
    aff_m[:3, 3] = 0.5  # voxel centres of the 2 mm grid sit between 1 mm centres
    meta_m = ImageMeta("m", "nifti", (12, 12, 6), (2.0, 2.0, 2.0), aff_m)
    moving = np.zeros((12, 12, 6), np.float32)
    moving[3:9, 4:8, 1:5] = 1.0  # covers 6..17 mm x 8..15 mm x 2..9 mm: the same box
    write_image(tmp_path / "f.nii.gz", fixed[None], meta_f)
    write_image(tmp_path / "m.nii.gz", moving[None], meta_m)
    write_image(tmp_path / "fl.nii.gz", fixed[None].astype(np.uint8), meta_f)
    write_image(tmp_path / "ml.nii.gz", moving[None].astype(np.uint8), meta_m)
    kp = tmp_path / "k.csv"
    kp.write_text("x,y,z\n3,4,1\n")
    pair = load_pair(PairSource("p", tmp_path / "f.nii.gz", tmp_path / "m.nii.gz", fixed_label=tmp_path / "fl.nii.gz",
                                moving_label=tmp_path / "ml.nii.gz", fixed_keypoints=kp, moving_keypoints=kp))
    assert pair.resampled and pair.moving.shape == (1, 24, 24, 12) and "resampled" in pair.notes[0]
    dice = 2 * (pair.moving_label[0] * fixed).sum() / (pair.moving_label[0].sum() + fixed.sum())
    assert dice > 0.85
    assert set(np.unique(pair.moving_label).tolist()) == {0, 1}
    assert np.allclose(pair.moving_keypoints, [[6.5, 8.5, 2.5]])  # voxel 3 of the 2 mm grid = 6.5 mm


def _two(tmp_path: Path, moving_meta: ImageMeta = META3, moving_array: np.ndarray | None = None):
    img = smooth_image(META3.spatial_shape)
    write_image(tmp_path / "f.nii.gz", img[None], META3)
    write_image(tmp_path / "m.nii.gz", (img if moving_array is None else moving_array)[None], moving_meta)
    return tmp_path / "f.nii.gz", tmp_path / "m.nii.gz", img


def test_bad_inputs_give_one_line_errors(tmp_path):
    f, m, img = _two(tmp_path)
    write_image(tmp_path / "flat.png", (smooth_image((16, 16)) * 255).astype(np.uint8)[None])
    cases = []
    with pytest.raises(InputError, match="moving image is 2D but the fixed image f.nii.gz is 3D") as e:
        load_pair(PairSource("p", f, tmp_path / "flat.png"))
    cases.append(e.value)
    with pytest.raises(InputError, match="moving image not found") as e:
        load_pair(PairSource("p", f, tmp_path / "nope.nii.gz", source="pairs.csv row 2"))
    assert "pairs.csv row 2" in str(e.value)
    cases.append(e.value)
    write_image(tmp_path / "empty.nii.gz", np.zeros((1, 16, 16, 12), np.uint8), META3)
    write_image(tmp_path / "lab.nii.gz", _labels(img)[None], META3)
    with pytest.raises(InputError, match="label map is empty") as e:
        load_pair(PairSource("p", f, m, fixed_label=tmp_path / "lab.nii.gz", moving_label=tmp_path / "empty.nii.gz"))
    cases.append(e.value)
    with pytest.raises(InputError, match="label map for the fixed image only") as e:
        load_pair(PairSource("p", f, m, fixed_label=tmp_path / "lab.nii.gz"))
    cases.append(e.value)
    write_image(tmp_path / "other.nii.gz", (_labels(img) * 0 + 7)[None], META3)
    with pytest.raises(InputError, match="share no structure id") as e:
        load_pair(PairSource("p", f, m, fixed_label=tmp_path / "lab.nii.gz", moving_label=tmp_path / "other.nii.gz"))
    cases.append(e.value)
    far = ImageMeta("m", "nifti", META3.spatial_shape, (1.0, 1.0, 1.0), np.eye(4))
    far.affine[:3, 3] = [500.0, 0.0, 0.0]
    write_image(tmp_path / "far.nii.gz", img[None], far)
    with pytest.raises(InputError, match="does not overlap the fixed image f.nii.gz at all") as e:
        load_pair(PairSource("p", f, tmp_path / "far.nii.gz"))
    cases.append(e.value)
    (tmp_path / "k3.csv").write_text("1,2,3\n4,5,6\n7,8,9\n")
    (tmp_path / "k2.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(InputError, match="2 moving keypoints but 3 fixed") as e:
        load_pair(PairSource("p", f, m, fixed_keypoints=tmp_path / "k3.csv", moving_keypoints=tmp_path / "k2.csv"))
    cases.append(e.value)
    (tmp_path / "kbad.csv").write_text("1,2\n")
    with pytest.raises(InputError, match="3 coordinates per row") as e:
        load_pair(PairSource("p", f, m, fixed_keypoints=tmp_path / "kbad.csv", moving_keypoints=tmp_path / "kbad.csv"))
    cases.append(e.value)
    for err in cases:  # one line, naming a file
        assert "\n" not in str(err) and err.source
