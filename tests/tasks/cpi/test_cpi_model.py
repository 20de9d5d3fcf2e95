"""DeepDTA shapes, a tiny model learns a synthetic affinity through the API, save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import medlearn
from medlearn.evaluation.affinity import concordance_index
from medlearn.tasks.cpi.data import load_pairs_csv
from medlearn.tasks.cpi.model import AffinityModel
from medlearn.tasks.cpi.nets import DeepDTA

from .synthetic import train_val_csv

TINY = {"network.embed_dim": 16, "network.filters": 8, "network.hidden": [32], "network.protein_kernel": 4,
        "network.compound_kernel": 3, "train.batch_size": 32, "train.max_epochs": 25, "train.patience": 100,
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


@pytest.mark.parametrize("branches", [("fingerprint", "kmer"), ("cnn", "cnn")])
def test_tiny_model_learns_and_round_trips(tmp_path, branches):
    csv, train_rows = train_val_csv(tmp_path / "pairs.csv")
    overrides = {**TINY, "network.compound": branches[0], "network.protein": branches[1]}
    model = AffinityModel(overrides=overrides, seed=0, n_boot=20).fit(csv, tmp_path / "run")
    table = load_pairs_csv(csv)
    pred = model.predict_table(table, train_rows)
    assert concordance_index(table.y[train_rows], pred) > 0.75
    # the saved model.pt, read back, scores validation as the training process did before saving it
    again = medlearn.load_run(tmp_path / "run")
    assert isinstance(again, AffinityModel) and again is not model
    val_rows = np.setdiff1d(np.arange(len(table)), train_rows)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["val"]["ci"]["value"]
    assert concordance_index(table.y[val_rows], again.predict_table(table, val_rows)) == pytest.approx(saved, abs=1e-6)
    direct = again.predict([table.smiles[table.drug[0]]], [table.sequences[table.protein[0]]])
    assert direct.shape == (1,) and abs(direct[0] - again.predict_table(table, [0])[0]) < 1e-4


def test_binary_values_train_an_interaction_classifier(tmp_path):
    csv, _ = train_val_csv(tmp_path / "pairs.csv", seed=1, binary=True)
    model = AffinityModel(overrides={**TINY, "train.max_epochs": 3}, n_boot=20).fit(csv, tmp_path / "run")
    assert model.task_ == "classification" and model.plan_.task == "classification"
    prob = model.predict_table(load_pairs_csv(csv))
    assert prob.shape == (80,) and ((prob >= 0) & (prob <= 1)).all()
    val = model.metrics_["val"]
    assert set(val) >= {"roc_auc", "pr_auc"} and val["roc_auc"]["ci95"] is not None


def test_a_cold_protein_run_scores_unseen_proteins_with_cis_over_proteins(tmp_path):
    from .synthetic import synthetic, write_csv

    csv = write_csv(synthetic(n_comp=6, n_prot=40), tmp_path / "pairs.csv")
    overrides = {**TINY, "train.max_epochs": 3, "data.split": "cold_protein", "data.test_fraction": 0.3}
    model = AffinityModel(overrides=overrides, n_boot=50).fit(csv, tmp_path / "run")
    test, val = model.metrics_["test"], model.metrics_["val"]
    assert test["ci_unit"] == "proteins" and 10 <= test["n_groups"] <= 14 and test["n"] == 6 * test["n_groups"]
    assert test["mse"]["ci95"] is not None  # 12 proteins: enough to resample
    assert val["n_groups"] == 4 and val["mse"]["ci95"] is None and "4 unit(s)" in val["mse"]["ci_note"]
