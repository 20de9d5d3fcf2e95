"""DeepDTA shapes, a tiny model learns a synthetic affinity, save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.cpi.api import AffinityModel
from medlearn.cpi.data import InteractionTable
from medlearn.cpi.metrics import concordance_index
from medlearn.cpi.nets import DeepDTA
from medlearn.cpi.plan import CPIPlan

TINY = {"net.embed_dim": 16, "net.filters": 8, "net.hidden": [32], "net.protein_kernel": 4,
        "net.compound_kernel": 3, "train.batch_size": 32, "train.max_epochs": 25, "train.patience": 100,
        "train.lr": 0.003, "train.ensemble": 1}


def test_deepdta_shapes_and_unique_batching():
    net = DeepDTA(10, 27, embed_dim=8, filters=4, hidden=(16,)).eval()
    comps = torch.randint(1, 10, (3, 20))
    prots = torch.randint(1, 27, (5, 60))
    d = torch.tensor([0, 2, 2, 1])
    p = torch.tensor([4, 4, 0, 1])
    out = net(comps, prots, d, p)
    assert out.shape == (4,)
    # each pair's output only depends on its own compound and protein
    single = net(comps, prots, d[1:2], p[1:2])
    assert torch.allclose(out[1:2], single, atol=1e-6)


def _synthetic(n_comp=10, n_prot=8, seed=0):
    rng = np.random.default_rng(seed)
    smiles = ["C" * (i + 1) + "O" * (i % 3) for i in range(n_comp)]
    seqs = ["".join(rng.choice(list("ACDEFGHIKL"), 30)) for _ in range(n_prot)]
    d, p = np.meshgrid(np.arange(n_comp), np.arange(n_prot), indexing="ij")
    d, p = d.ravel(), p.ravel()
    y = 0.3 * d + np.array([s.count("K") for s in seqs])[p] * 0.2 + 5.0
    return InteractionTable(smiles, seqs, d, p, y.astype(float), np.arange(len(d)))


@pytest.mark.parametrize("branches", [("fingerprint", "kmer"), ("cnn", "cnn")])
def test_tiny_model_learns_and_round_trips(tmp_path, branches):
    table = _synthetic()
    idx = np.random.default_rng(0).permutation(len(table))
    plan = CPIPlan().apply_overrides({**TINY, "net.compound": branches[0], "net.protein": branches[1]})
    model = AffinityModel(plan, seed=0).fit(table, idx[:64], idx[64:])
    pred = model.predict_table(table, idx[:64])
    assert concordance_index(table.y[idx[:64]], pred) > 0.75
    model.save(tmp_path / "m.pt")
    again = AffinityModel.load(tmp_path / "m.pt")
    np.testing.assert_allclose(again.predict_table(table), model.predict_table(table), rtol=1e-5, atol=1e-5)
    direct = again.predict([table.smiles[0]], [table.sequences[0]])
    assert direct.shape == (1,) and abs(direct[0] - model.predict_table(table, [0])[0]) < 1e-4


def test_binary_values_train_an_interaction_classifier():
    table = _synthetic()
    table.y = (table.y > np.median(table.y)).astype(float)
    idx = np.random.default_rng(1).permutation(len(table))
    plan = CPIPlan().apply_overrides({**TINY, "train.max_epochs": 3})
    model = AffinityModel(plan, seed=0).fit(table, idx[:64], idx[64:])
    assert model.task_ == "classification"
    prob = model.predict_table(table)
    assert prob.shape == (len(table),) and ((prob >= 0) & (prob <= 1)).all()
