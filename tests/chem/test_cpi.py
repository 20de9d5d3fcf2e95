import json

import numpy as np
import pytest
import torch

from medlearn.chem.cpi.data import load_deepdta, load_pair_csv
from medlearn.chem.cpi.metrics import concordance_index, cpi_metrics, rm2
from medlearn.chem.cpi.model import CPIRegressor, ProteinKmerEncoder, drug_features, kmer_counts
from medlearn.errors import InputError

torch.set_num_threads(1)
DRUGS = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "Clc1ccccc1", "OCC(O)CO", "CCCCCCCC", "c1ccncc1"]
PROTS = ["MKKFFDSRREQGGSGL", "ACDEFGHIKLMNPQRS", "MMMMKKKKLLLLAAAA", "GGGGSSSSTTTTPPPP", "WYWYWYHHHHRRRRDD",
         "MSTNPKPQRKTKRNTNRR"]


def test_ci_and_rm2_known_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert concordance_index(y, y) == 1.0
    assert concordance_index(y, -y) == 0.0
    assert concordance_index(y, np.zeros(4)) == 0.5
    assert np.isclose(rm2(y, y), 1.0)
    m = cpi_metrics(y, y + 1)
    assert m["mse"] == 1.0 and m["ci"] == 1.0 and m["rm2"] < 1.0


def test_kmer_encoder():
    X = kmer_counts(PROTS, (1, 2))
    assert X.shape == (6, 420)
    np.testing.assert_allclose(X[:, :20].sum(1), 1.0, rtol=1e-5)
    enc = ProteinKmerEncoder(n_components=4).fit(PROTS)
    Z = enc.transform(PROTS + ["ACDEFGHIKL"])
    assert Z.shape == (7, 4) and np.isfinite(Z).all()


def _pairs():
    rng = np.random.RandomState(0)
    di, pi = np.meshgrid(np.arange(8), np.arange(6), indexing="ij")
    di, pi = di.ravel(), pi.ravel()
    drug_eff = np.linspace(0, 3, 8)
    prot_eff = np.array([0, 1, 2, 0.5, 1.5, 2.5])
    y = 5 + drug_eff[di] + prot_eff[pi] + 0.05 * rng.randn(len(di))
    return di, pi, y


def test_model_learns_additive_affinity():
    di, pi, y = _pairs()
    Xd, Xp = drug_features(DRUGS), ProteinKmerEncoder(n_components=5).fit(PROTS).transform(PROTS)
    perm = np.random.RandomState(1).permutation(len(y))
    tr, te = perm[:38], perm[38:]
    m = CPIRegressor(hidden=32, max_epochs=80, batch_size=16, lr=3e-3, dropout=0.0).fit(
        Xd, Xp, di[tr], pi[tr], y[tr], val=(di[te], pi[te], y[te]))
    p = m.predict(di[te], pi[te])
    assert np.mean((p - y[te]) ** 2) < 0.5 * np.var(y[te])
    assert concordance_index(y[te], p) > 0.75


def test_deepdta_folder_and_pair_csv(tmp_path):
    folder = tmp_path / "davis"
    (folder / "folds").mkdir(parents=True)
    (folder / "ligands_can.txt").write_text(json.dumps({str(i): s for i, s in enumerate(DRUGS[:3])}))
    (folder / "proteins.txt").write_text(json.dumps({f"P{i}": s for i, s in enumerate(PROTS[:2])}))
    (folder / "affinity.txt").write_text("10000 100\n1 nan\n10 1000\n")
    (folder / "folds" / "train_fold_setting1.txt").write_text(json.dumps([[0, 1], [2, 3]]))
    (folder / "folds" / "test_fold_setting1.txt").write_text(json.dumps([4]))
    T = load_deepdta(folder)
    assert len(T.y) == 5  # the NaN entry is not a pair
    np.testing.assert_allclose(T.y[0], 5.0)  # 10000 nM -> pKd 5
    assert T.drug_idx.tolist() == [0, 0, 1, 2, 2] and T.prot_idx.tolist() == [0, 1, 0, 0, 1]
    assert T.folds["test"] == [4]
    (folder / "affinity.txt").write_text("1 2\n")
    with pytest.raises(InputError, match="does not match"):
        load_deepdta(folder)
    csv = tmp_path / "pairs.csv"
    csv.write_text("smiles,sequence,y\nCCO,MKKF,5.0\nnot_smiles,MKKF,6.0\nCCN,ACDE,7.0\n")
    P = load_pair_csv(csv)
    assert len(P.y) == 2 and len(P.smiles) == 2
    with pytest.raises(InputError, match="no column 'seq'"):
        load_pair_csv(csv, sequence_column="seq")
