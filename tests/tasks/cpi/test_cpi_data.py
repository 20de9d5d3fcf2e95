"""Loaders: Davis pKd by hand, DeepDTA folds, CSV of pairs with invalid rows skipped; the split of pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlearn.errors import InputError
from medlearn.tasks.base import TrainRequest
from medlearn.tasks.cpi.data import load_affinity_matrix, load_pairs_csv, pair_keys, pkd_from_kd_nm
from medlearn.tasks.cpi.encode import encode_strings, kmer_features
from medlearn.tasks.cpi.module import ProteinGroupedBatchSampler
from medlearn.tasks.cpi.task import TASK


def test_pkd_by_hand():
    assert pkd_from_kd_nm(np.array([10000.0]))[0] == pytest.approx(5.0)
    assert pkd_from_kd_nm(np.array([1.0]))[0] == pytest.approx(9.0)


def test_davis_layout(shared_data):
    t = load_affinity_matrix(shared_data / "davis_kiba_dta", "davis")
    assert (len(t.smiles), len(t.sequences), len(t)) == (68, 442, 68 * 442)
    # first matrix entry: Kd 43 nM -> pKd = -log10(43e-9)
    assert t.y[0] == pytest.approx(-math.log10(43e-9))
    assert (t.drug[0], t.protein[0]) == (0, 0)
    assert sorted(t.folds) == ["fold0", "fold1", "fold2", "fold3", "fold4", "test"]
    all_idx = np.concatenate(list(t.folds.values()))
    assert len(np.unique(all_idx)) == len(all_idx) == len(t)  # folds partition the pairs
    assert t.protein_names[0] == "AAK1"


def test_pairs_csv_skips_bad_rows(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("smiles,sequence,value\nCCO,MKVL,5.0\nnot_smiles,MKVL,6.0\nCCN,,7.0\nCCO,MKKL,7.5\n")
    t = load_pairs_csv(csv)
    assert len(t) == 2 and t.invalid_rows == [1, 2]
    assert t.smiles == ["CCO"] and sorted(t.sequences) == ["MKKL", "MKVL"]
    with pytest.raises(InputError, match="p.csv"):
        load_pairs_csv(csv, value_column="nope")


def test_encodings():
    ids = encode_strings(["CCO", "XYZQ"], ["C", "O"], 3)
    assert ids.tolist() == [[2, 2, 3], [1, 1, 1]]
    f = kmer_features(["AAAA", "AC"])
    assert f.shape == (2, 8420)
    assert f[0, 0] == pytest.approx(math.sqrt(20))  # all residues are A: frequency 1, scaled
    assert f[1, 20 + 1] == pytest.approx(math.sqrt(400))  # the single 2-mer 'AC'


def test_grouped_sampler_covers_every_pair_once():
    protein = np.repeat(np.arange(10), 7)
    s = ProteinGroupedBatchSampler(protein, batch_size=8, mix=2, seed=0)
    for _ in range(2):
        batches = list(s)
        assert len(batches) == len(s)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(70))
    # few proteins per batch: a window of 16 pairs spans at most 4 proteins of 7 pairs
    assert max(len(set(protein[b])) for b in batches) <= 4


def _split(data, overrides=(), seed=0):
    from medlearn.plan import parse_overrides

    request = TrainRequest("cpi", data.source, "run", list(overrides))
    request.plan_overrides = parse_overrides(list(overrides))  # what the engine does before split
    return TASK.split(data, request, seed)


def test_davis_folds_are_the_split(shared_data):
    t = load_affinity_matrix(shared_data / "davis_kiba_dta", "davis")
    splits = _split(t)
    assert splits.unit == "pair" and splits.sizes() == {"train": sum(len(t.folds[f"fold{k}"]) for k in range(4)),
                                                         "val": len(t.folds["fold4"]), "test": len(t.folds["test"])}
    assert sorted(splits.indices("val").tolist()) == sorted(t.folds["fold4"].tolist())
    assert splits.ids[0] == 0 and splits.ids[-1] == 68 * 442 - 1  # flat matrix positions
    other = _split(t, ["data.val_fold=0"])
    assert sorted(other.indices("val").tolist()) == sorted(t.folds["fold0"].tolist())
    with pytest.raises(InputError, match="val_fold"):
        _split(t, ["data.val_fold=5"])


def test_csv_split_column_and_random_split(tmp_path):
    rows = ["smiles,sequence,value,split"] + [f"{'C' * (i % 7 + 1)},MKV{'L' * (i % 5)},{i / 10},"
                                              f"{'test' if i >= 40 else 'train'}" for i in range(50)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    t = load_pairs_csv(tmp_path / "s.csv")
    splits = _split(t, seed=1)
    sizes = splits.sizes()
    assert sizes["test"] == 10 and sizes["val"] == 4 and sizes["train"] == 36  # val: 10% of the train rows
    assert set(splits.indices("test").tolist()) == set(range(40, 50))
    (tmp_path / "r.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    random = _split(load_pairs_csv(tmp_path / "r.csv"), seed=2)
    assert random.sizes() == {"train": 40, "val": 5, "test": 5}  # the shared 8/1/1 protocol
    assert _split(load_pairs_csv(tmp_path / "r.csv"), seed=2).assignment.tolist() == random.assignment.tolist()


def test_degenerate_values_are_refused(tmp_path):
    (tmp_path / "inf.csv").write_text("smiles,sequence,value\nCCO,MKVL,5.0\nCCN,MKVL,inf\n")
    with pytest.raises(InputError, match="inf.csv.*row 1"):
        load_pairs_csv(tmp_path / "inf.csv")
    rows = "\n".join(f"{'C' * (i % 5 + 1)},MKV{'L' * i},7.0" for i in range(30))
    (tmp_path / "flat.csv").write_text("smiles,sequence,value\n" + rows + "\n")
    with pytest.raises(InputError, match="flat.csv: every training pair has the value 7"):
        _split(load_pairs_csv(tmp_path / "flat.csv"))
    (tmp_path / "few.csv").write_text("smiles,sequence,value\nCCO,MKVL,5.0\nCCN,MKVL,6.0\n")
    with pytest.raises(InputError, match="few.csv.*training"):
        _split(load_pairs_csv(tmp_path / "few.csv"))


def test_pair_keys_see_through_smiles_spelling(tmp_path):
    (tmp_path / "a.csv").write_text("smiles,sequence,value\nOCC,mkvl,5.0\nCCN,MKVL,6.0\n")
    (tmp_path / "b.csv").write_text("smiles,sequence,value\nCCO,MKVL,1.0\nCCN,MKVA,2.0\n")
    a, b = load_pairs_csv(tmp_path / "a.csv"), load_pairs_csv(tmp_path / "b.csv")
    assert np.isin(pair_keys(b), pair_keys(a)).tolist() == [True, False]  # same ethanol / kinase; other sequence


def test_interactions_need_both_classes_to_select_on():
    from medlearn.data.splits import Splits
    from medlearn.tasks.cpi.plan import CPIPlan

    from .synthetic import synthetic

    t = synthetic()
    t.y = (np.arange(len(t)) % 2).astype(float)
    t.source = "pairs.csv"
    assignment = np.where(np.arange(len(t)) < 60, "train", "val").astype(object)
    assignment[60:] = np.where(np.arange(60, len(t)) % 2 == 1, "val", "test")  # val: only 1s
    splits = Splits(list(range(len(t))), assignment, unit="pair")
    plan = TASK.make_plan(t, splits, None)
    assert plan.task == "classification"
    with pytest.raises(InputError, match="pairs.csv: the validation pairs hold one class"):
        TASK.finish_plan(plan, t, splits, {}, print)
    t.y = np.arange(len(t)) / 10
    with pytest.raises(InputError, match="needs 0/1 values"):
        TASK.finish_plan(CPIPlan(task="classification"), t, splits, {"task": "classification"}, print)


@pytest.mark.parametrize("split", ["cold_protein", "cold_drug"])
def test_cold_splits_hold_whole_proteins_or_compounds_out(shared_data, split):
    t = load_affinity_matrix(shared_data / "davis_kiba_dta", "davis")
    splits = _split(t, [f"data.split={split}"])
    unit = t.protein if split == "cold_protein" else t.drug
    seen = {part: set(unit[splits.indices(part)].tolist()) for part in ("train", "val", "test")}
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"] and not seen["val"] & seen["test"]
    sizes = splits.sizes()
    assert 0.05 < sizes["test"] / len(t) < 0.15 and 0.05 < sizes["val"] / len(t) < 0.15  # test/val_fraction 0.1
    assert sorted(splits.indices("test").tolist()) != sorted(t.folds["test"].tolist())  # not the DeepDTA folds
    assert _split(t, [f"data.split={split}"]).assignment.tolist() == splits.assignment.tolist()  # seeded


def test_a_cold_split_is_refused_where_it_cannot_hold(tmp_path):
    rows = ["smiles,sequence,value,split"] + [f"{'C' * (i % 7 + 1)},MKV{'L' * (i % 5)},{i / 10},"
                                              f"{'test' if i >= 40 else 'train'}" for i in range(50)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match="split column"):
        _split(load_pairs_csv(tmp_path / "s.csv"), ["data.split=cold_protein"])
    (tmp_path / "two.csv").write_text("smiles,sequence,value\n" + "".join(
        f"{'C' * (i % 9 + 1)},MKV{'L' * (i % 2)},{i / 10}\n" for i in range(40)))  # two proteins only
    with pytest.raises(InputError, match="too few") as error:
        _split(load_pairs_csv(tmp_path / "two.csv"), ["data.split=cold_protein"])
    assert "\n" not in str(error.value)
