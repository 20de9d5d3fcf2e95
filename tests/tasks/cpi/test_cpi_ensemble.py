"""Interaction head, k-mer PCA, plateau schedule, random batches, plan checks, deep ensemble (save/load/resume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.errors import InputError
from medlearn.io.artifact import load_artifact
from medlearn.tasks.cpi.data import load_pairs_csv
from medlearn.tasks.cpi.encode import apply_kmer_projection, fit_kmer_projection
from medlearn.tasks.cpi.model import AffinityModel
from medlearn.tasks.cpi.module import AffinityModule, ProteinGroupedBatchSampler
from medlearn.tasks.cpi.nets import DeepDTA
from medlearn.tasks.cpi.plan import CPIPlan

from .synthetic import train_val_csv

SMALL = {"network.fp_counts": True, "network.kmer_pca": 4, "network.head": "interaction", "network.tower_dim": 8,
         "network.tower_hidden": 16, "network.hidden": [16], "network.n_bits": 64, "train.batch_size": 32,
         "train.max_epochs": 3, "train.patience": 100, "train.protein_mix": 0, "train.ensemble": 2}


def test_interaction_head_shapes_and_per_pair_independence():
    net = DeepDTA(10, 27, compound="fingerprint", protein="kmer", n_bits=12, n_kmer=7, hidden=(16,),
                  head="interaction", tower_dim=5, tower_hidden=9).eval()
    assert net.head[0].in_features == 15  # [d, p, d * p], 3 x 5
    comps, prots = torch.rand(3, 12), torch.rand(4, 7)
    d, p = torch.tensor([0, 2, 2, 1]), torch.tensor([3, 3, 0, 1])
    out = net(comps, prots, d, p)
    assert out.shape == (4,)
    assert torch.allclose(out[2:3], net(comps, prots, d[2:3], p[2:3]), atol=1e-6)
    # unequal code widths (SMILES CNN 3F = 12 vs k-mer tower 5) are projected to tower_dim first
    mixed = DeepDTA(10, 27, compound="cnn", protein="kmer", n_kmer=7, embed_dim=4, filters=4, hidden=(8,),
                    head="interaction", tower_dim=5).eval()
    assert mixed(torch.randint(1, 10, (3, 30)), prots, d, p).shape == (4,)
    with pytest.raises(ValueError, match="head"):
        DeepDTA(10, 27, head="sum")


def test_kmer_projection_is_standardised_pca():
    rng = np.random.default_rng(0)
    X = rng.random((12, 30)).astype(np.float32)
    proj = fit_kmer_projection(X, n_components=50)
    assert proj["components"].shape == (30, 11)  # at most P - 1 components
    C = proj["components"]
    np.testing.assert_allclose(C.T @ C, np.eye(11), atol=1e-4)
    Z = apply_kmer_projection(X, proj)
    assert Z.shape == (12, 11) and Z[:, 0].std() == pytest.approx(1.0, rel=1e-3)
    assert np.all(np.diff(Z.var(0)) <= 1e-5)  # components ordered by explained variance
    assert apply_kmer_projection(X[:2], proj) == pytest.approx(Z[:2], abs=1e-5)


def test_random_batches_cover_each_pair_once():
    s = ProteinGroupedBatchSampler(np.repeat(np.arange(5), 7), batch_size=8, mix=0, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 5 and max(map(len, batches)) == 8
    assert sorted(i for b in batches for i in b) == list(range(35))


def test_plateau_schedule_and_plan_checks():
    net = DeepDTA(10, 27, compound="fingerprint", protein="kmer", n_bits=4, n_kmer=4, hidden=(4,))
    mod = AffinityModule(net, torch.rand(2, 4), torch.rand(2, 4), "regression", lr_schedule="plateau")
    conf = mod.configure_optimizers()
    assert isinstance(conf["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert conf["lr_scheduler"]["monitor"] == "val_mse"
    for key, bad in (("network.head", "sum"), ("train.ensemble", 0), ("train.lr_schedule", "cosine"),
                     ("network.kmer_pca", -1), ("train.lr", -1), ("train.batch_size", 0), ("task", "ranking"),
                     ("data.val_fraction", 0)):
        with pytest.raises(InputError, match=key.split(".")[-1]):
            CPIPlan().apply_overrides({key: bad})
    for gone in ("net.head", "train.threads", "train.max_time_minutes"):  # renamed or dropped: say so
        with pytest.raises(InputError, match="unknown plan field"):
            CPIPlan().apply_overrides({gone: 1})
    assert CPIPlan().network.name == "deepdta" and CPIPlan().train.max_minutes == 25.0


def test_ensemble_predicts_mean_and_spread_round_trips_and_resumes(tmp_path, monkeypatch):
    import medlearn.engine.parallel as parallel

    monkeypatch.setattr(parallel, "available_cores", lambda: 1)  # members one after another, in this process
    csv, _ = train_val_csv(tmp_path / "pairs.csv")
    table = load_pairs_csv(csv)
    run = tmp_path / "run"
    model = AffinityModel(overrides=SMALL, seed=3, n_boot=20).fit(csv, run)
    assert [m["seed"] for m in model.metrics_["training"]["per_member"]] == [3, 4]
    assert [m["seed"] for m in model.members_] == [3, 4]
    assert model.kmer_projection_["components"].shape[1] == 4
    members = model.predict_members(table)
    mean, std = model.predict_table(table, return_std=True)
    assert members.shape == (2, len(table))
    np.testing.assert_allclose(mean, members.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, members.std(0), rtol=1e-6)
    assert (std > 0).any()  # different seeds -> different members
    again = AffinityModel.load(run)
    np.testing.assert_allclose(again.predict_members(table), members, rtol=1e-5, atol=1e-5)
    saved = load_artifact(run / "model.pt", task="cpi")
    assert len(saved.tensors["members"]) == 2 and saved.extras["task"] == "regression"

    # interrupted in member 1: its member.pt is missing, member 0 is finished and must not retrain
    done0 = run / "checkpoints" / "member0" / "member.pt"
    last0 = run / "checkpoints" / "member0" / "last.ckpt"
    (run / "checkpoints" / "member1" / "member.pt").unlink()
    (run / "metrics.json").unlink()  # the run never finished
    stamp = (last0.stat().st_mtime_ns, done0.stat().st_mtime_ns)
    resumed = AffinityModel(overrides=SMALL, seed=3, n_boot=20).fit(csv, run, resume=True)
    assert (last0.stat().st_mtime_ns, done0.stat().st_mtime_ns) == stamp
    assert (run / "checkpoints" / "member1" / "member.pt").exists()
    np.testing.assert_allclose(resumed.predict_members(table)[0], members[0], rtol=1e-5, atol=1e-5)
    assert (run / "logs" / "member0" / "metrics.csv").exists()
