"""Loaders: Davis pKd by hand, DeepDTA folds, CSV of pairs with invalid rows skipped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlearn.cpi.data import load_affinity_matrix, load_pairs_csv, pkd_from_kd_nm
from medlearn.cpi.encode import encode_strings, kmer_features
from medlearn.cpi.lit import ProteinGroupedBatchSampler
from medlearn.errors import InputError


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
