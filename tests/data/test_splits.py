from pathlib import Path

import numpy as np
import pytest

from medlearn.data.splits import assign_splits, check_grouping, load_split_file
from medlearn.errors import InputError


def test_grouped_split_never_shares_a_patient() -> None:
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(60)], 3)
    labels = np.repeat(rng.integers(0, 2, 60), 3)
    splits = assign_splits(labels, patients, seed=1)
    check_grouping(splits, patients)
    for p in np.unique(patients):
        assert len(set(splits[patients == p])) == 1
    share = {s: (splits == s).mean() for s in ("train", "val", "test")}
    assert 0.6 < share["train"] < 0.8 and 0.05 < share["val"] < 0.2 and 0.1 < share["test"] < 0.3


def test_stratified_split_is_seeded_and_keeps_balance() -> None:
    labels = np.array([0] * 300 + [1] * 100)
    a = assign_splits(labels, seed=3)
    b = assign_splits(labels, seed=3)
    c = assign_splits(labels, seed=4)
    assert (a == b).all() and not (a == c).all()
    for s in ("train", "val", "test"):
        assert abs(labels[a == s].mean() - 0.25) < 0.03


def test_fixed_splits_kept_and_val_carved_from_train() -> None:
    labels = np.array([0, 1] * 50)
    fixed = np.array(["train"] * 80 + ["test"] * 20)
    splits = assign_splits(labels, fixed=fixed, seed=0)
    assert (splits[80:] == "test").all() and (splits == "val").sum() > 0 and (splits[:80] != "test").all()


def test_leak_detected() -> None:
    with pytest.raises(InputError, match="patient 'a'"):
        check_grouping(np.array(["train", "test"]), np.array(["a", "a"]))


def test_split_file(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"train": ["x", 1], "val": ["z"], "test": []}')
    assert list(load_split_file(tmp_path / "s.json", ["x", "y", "z"])) == ["train", "train", "val"]
    (tmp_path / "bad.json").write_text('{"train": ["nope"]}')
    with pytest.raises(InputError, match="nope"):
        load_split_file(tmp_path / "bad.json", ["x"])
