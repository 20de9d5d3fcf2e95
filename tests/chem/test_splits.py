import json

import numpy as np
import pytest

from medlearn.chem.data import load_smiles_csv
from medlearn.chem.splits import (
    make_split,
    murcko_scaffold,
    random_split,
    read_split_file,
    scaffold_split,
    split_sizes,
    split_to_rows,
    stratified_split,
)
from medlearn.errors import InputError


def _disjoint_cover(parts, n):
    allidx = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert len(allidx) == n and len(np.unique(allidx)) == n


def test_sizes_follow_shared_protocol():
    assert split_sizes(1128) == (902, 113, 113)
    assert split_sizes(2039) == (1631, 204, 204)
    parts = random_split(100, seed=1)
    _disjoint_cover(parts, 100)
    assert not np.array_equal(parts["test"], random_split(100, seed=2)["test"])


def test_scaffold_split_keeps_scaffolds_apart(smiles):
    parts = scaffold_split(smiles, seed=0)
    _disjoint_cover(parts, len(smiles))
    scaf = {k: {murcko_scaffold(smiles[i]) for i in v} for k, v in parts.items()}
    assert not (scaf["train"] & scaf["test"]) and not (scaf["train"] & scaf["val"]) and not (scaf["val"] & scaf["test"])


def test_stratified_keeps_class_balance():
    y = np.array([1.0] * 20 + [0.0] * 80)
    parts = stratified_split(y, seed=0)
    _disjoint_cover(parts, 100)
    assert y[parts["test"]].sum() == 2 and y[parts["val"]].sum() == 2


def test_split_file_roundtrip_and_errors(regression_csv, tmp_path):
    t = load_smiles_csv(regression_csv, "smiles", ["logp"])
    parts = make_split(t, "random", seed=0)
    rows = split_to_rows(parts, t)
    path = tmp_path / "split.json"
    rows["test"] = rows["test"] + [3]  # an invalid row listed in the file is dropped, not an error
    path.write_text(json.dumps(rows))
    back = read_split_file(path, t)
    for k in parts:
        np.testing.assert_array_equal(np.sort(back[k]), parts[k])
    path.write_text(json.dumps({"train": [0], "val": [1]}))
    with pytest.raises(InputError, match="lacks test"):
        read_split_file(path, t)
    path.write_text(json.dumps({"train": [0], "val": [1], "test": [999]}))
    with pytest.raises(InputError, match="row 999"):
        read_split_file(path, t)
    with pytest.raises(InputError, match="unknown split"):
        make_split(t, "temporal")
