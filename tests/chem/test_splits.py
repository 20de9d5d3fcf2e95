import json

import numpy as np
import pytest

from medlearn.chem.data import load_smiles_csv
from medlearn.chem.splits import murcko_scaffold, read_molecule_split, scaffold_split, split_molecules, value_strata
from medlearn.data.splits import random_fractions, split_sizes, stratified_interleaved
from medlearn.errors import InputError


def _disjoint_cover(parts, n):
    allidx = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert len(allidx) == n and len(np.unique(allidx)) == n


def test_sizes_follow_shared_protocol():
    assert split_sizes(1128) == (902, 113, 113)
    assert split_sizes(2039) == (1631, 204, 204)
    parts = random_fractions(100, seed=1)
    _disjoint_cover(parts, 100)
    assert not np.array_equal(parts["test"], random_fractions(100, seed=2)["test"])


def test_scaffold_split_keeps_scaffolds_apart(smiles):
    parts = scaffold_split(smiles, seed=0)
    _disjoint_cover(parts, len(smiles))
    scaf = {k: {murcko_scaffold(smiles[i]) for i in v} for k, v in parts.items()}
    assert not (scaf["train"] & scaf["test"]) and not (scaf["train"] & scaf["val"]) and not (scaf["val"] & scaf["test"])


def test_stratified_keeps_class_balance():
    y = np.array([1.0] * 20 + [0.0] * 80)
    parts = stratified_interleaved(value_strata(y), seed=0)
    _disjoint_cover(parts, 100)
    assert y[parts["test"]].sum() == 2 and y[parts["val"]].sum() == 2


def test_split_file_roundtrip_and_errors(regression_csv, tmp_path):
    t = load_smiles_csv(regression_csv, "smiles", ["logp"])
    splits = split_molecules(t, "random", seed=0)
    rows = {k: v for k, v in splits.to_dict().items() if k in ("train", "val", "test")}
    assert 3 not in sum(rows.values(), []) and splits.unit == "molecule"
    path = tmp_path / "split.json"
    rows["test"] = rows["test"] + [3]  # an invalid row listed in the file is dropped, not an error
    path.write_text(json.dumps({**rows, "dataset": "tiny", "csv": "mols.csv"}))  # descriptive keys are fine
    back = read_molecule_split(path, t)
    np.testing.assert_array_equal(back.assignment, splits.assignment)
    path.write_text(json.dumps({"train": [0], "val": [1]}))
    with pytest.raises(InputError, match="lacks test"):
        read_molecule_split(path, t)
    path.write_text(json.dumps({"train": [0], "val": [1], "test": [999]}))
    with pytest.raises(InputError, match="row 999"):
        read_molecule_split(path, t)
    path.write_text(json.dumps({"train": [0, 1], "val": [1], "test": [2]}))
    with pytest.raises(InputError, match="both"):
        read_molecule_split(path, t)
    with pytest.raises(InputError, match="unknown split"):
        split_molecules(t, "temporal")


@pytest.mark.parametrize("name, kind", [("esol", "random"), ("bbbp", "scaffold")])
def test_splits_reproduce_the_shared_split_files(shared_data, name, kind):
    """random / scaffold give exactly the stored benchmark splits (sizes and rows) of the shared protocol."""
    spec_path = shared_data.parent / "benchmarks" / "qsar" / "splits" / f"{name}_{kind}_seed0.json"
    spec = json.loads(spec_path.read_text())
    table = load_smiles_csv(shared_data / spec["csv"], spec["smiles_column"], spec["targets"])
    assert table.invalid_rows == spec["invalid_rows"]
    made = split_molecules(table, kind, seed=0).to_dict()
    for part in ("train", "val", "test"):
        assert made[part] == spec[part], part
    read = read_molecule_split(spec_path, table)
    assert read.sizes() == spec["sizes"]
