from pathlib import Path

import numpy as np
import pytest

from medlearn.data.splits import (
    Splits,
    balanced_groups,
    check_grouping,
    random_fractions,
    read_split_file,
    split_sizes,
    stratified_grouped,
)
from medlearn.errors import InputError


def test_grouped_split_never_shares_a_patient() -> None:
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(60)], 3)
    labels = np.repeat(rng.integers(0, 2, 60), 3)
    splits = stratified_grouped(labels, patients, seed=1)
    check_grouping(splits, patients)
    for p in np.unique(patients):
        assert len(set(splits[patients == p])) == 1
    share = {s: (splits == s).mean() for s in ("train", "val", "test")}
    assert 0.6 < share["train"] < 0.8 and 0.05 < share["val"] < 0.2 and 0.1 < share["test"] < 0.3


def test_stratified_split_is_seeded_and_keeps_balance() -> None:
    labels = np.array([0] * 300 + [1] * 100)
    a = stratified_grouped(labels, seed=3)
    b = stratified_grouped(labels, seed=3)
    c = stratified_grouped(labels, seed=4)
    assert (a == b).all() and not (a == c).all()
    for s in ("train", "val", "test"):
        assert abs(labels[a == s].mean() - 0.25) < 0.03


def test_fixed_splits_kept_and_val_carved_from_train() -> None:
    labels = np.array([0, 1] * 50)
    fixed = np.array(["train"] * 80 + ["test"] * 20)
    splits = stratified_grouped(labels, fixed=fixed, seed=0)
    assert (splits[80:] == "test").all() and (splits == "val").sum() > 0 and (splits[:80] != "test").all()


def test_leak_detected() -> None:
    with pytest.raises(InputError, match="patient 'a'"):
        check_grouping(np.array(["train", "test"]), np.array(["a", "a"]))


def test_split_file(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"train": ["x", 1], "val": ["z"], "test": []}')
    assert list(read_split_file(tmp_path / "s.json", ["x", "y", "z"]).assignment) == ["train", "train", "val"]
    (tmp_path / "bad.json").write_text('{"train": ["nope"]}')
    with pytest.raises(InputError, match="nope"):
        read_split_file(tmp_path / "bad.json", ["x"])


def test_every_task_writes_one_split_format_and_reads_it_back(tmp_path: Path) -> None:
    splits = Splits(["a", "b", "c", "d"], np.array(["train", "val", "test", "train"]), seed=7, unit="case")
    splits.save(tmp_path / "splits.json")
    import json

    saved = json.loads((tmp_path / "splits.json").read_text())
    assert saved == {"format": "medlearn.splits/1", "seed": 7, "unit": "case", "train": ["a", "d"], "val": ["b"],
                     "test": ["c"]}
    again = Splits.load(tmp_path / "splits.json", ["a", "b", "c", "d"], "case")
    assert list(again.assignment) == list(splits.assignment) and again.seed == 7


def test_overlapping_or_malformed_split_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "twice.json").write_text('{"train": [0, 1], "val": [1]}')
    with pytest.raises(InputError, match="both 'train' and 'val'"):
        read_split_file(tmp_path / "twice.json", ["a", "b"])
    (tmp_path / "list.json").write_text("[0, 1]")
    with pytest.raises(InputError, match="must be a mapping"):
        read_split_file(tmp_path / "list.json", ["a", "b"])
    with pytest.raises(InputError, match="both"):
        Splits.from_parts(["a", "b"], {"train": np.array([0, 1]), "test": np.array([1])})


def test_protocol_sizes_and_whole_groups() -> None:
    assert split_sizes(1128) == (902, 113, 113)  # ESOL under the shared 8/1/1 protocol
    parts = random_fractions(100, seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    groups = np.repeat(np.arange(25), 4)
    parts = balanced_groups(groups, seed=0)
    owner = {g: k for k, idx in parts.items() for g in set(groups[idx])}
    assert sum(len(v) for v in parts.values()) == 100
    assert all(set(groups[idx]) <= {g for g, k in owner.items() if k == name} for name, idx in parts.items())


def test_a_small_grouped_cohort_still_gets_a_split() -> None:
    """6 patients, 3 per class: too few for stratified group k-fold, still split by whole patients."""
    patients = np.repeat([f"p{i}" for i in range(6)], 2)
    labels = np.repeat([0, 1, 0, 1, 0, 1], 2)
    splits = stratified_grouped(labels, patients, seed=0)
    check_grouping(splits, patients)
    assert {"train", "val", "test"} <= set(splits)
