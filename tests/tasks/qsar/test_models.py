"""Models learn a tiny learnable target (Crippen logP) better than predicting the mean."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import medlearn
from medlearn.chem.featurize import FeatureSpec, featurize
from medlearn.chem.graph import batch_graphs, graphs_from_smiles
from medlearn.errors import InputError
from medlearn.evaluation.multitask import multitask_binary_metrics
from medlearn.tasks.qsar.baselines import MaskedMultiTask, baselines_for, make_baseline
from medlearn.tasks.qsar.model import QSARModel
from medlearn.tasks.qsar.nets import DMPNN, MultitaskMLP

torch.set_num_threads(1)


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.ravel(a) - np.ravel(b)) ** 2)))


@pytest.fixture(scope="module")
def split():
    idx = np.random.RandomState(0).permutation(64)
    return idx[:44], idx[44:54], idx[54:]


def fit(tmp_path, smiles, y, split, overrides, task_type=None) -> QSARModel:
    """Train a run on ``smiles`` / ``y`` (``(N,)`` or ``(N, T)``) with the given train / val / test positions."""
    y = np.asarray(y, dtype=float).reshape(len(smiles), -1)
    names = [f"y{j}" for j in range(y.shape[1])]
    csv = tmp_path / "data.csv"
    pd.DataFrame({"smiles": smiles, **{n: y[:, j] for j, n in enumerate(names)}}).to_csv(csv, index=False)
    split_file = tmp_path / "split.json"
    parts = zip(("train", "val", "test"), split, strict=True)
    split_file.write_text(json.dumps({k: [int(i) for i in v] for k, v in parts}))
    return QSARModel(overrides, n_boot=0, targets=names, split=str(split_file), task_type=task_type).fit(
        csv, tmp_path / "run")


def test_shapes_of_networks(smiles):
    g = batch_graphs(graphs_from_smiles(smiles[:5] + ["[Na+]"]))  # includes an atom without bonds
    net = DMPNN(n_tasks=3, hidden=16, depth=3, ffn_hidden=8, extra_dim=4)
    assert net(g, torch.zeros(6, 4)).shape == (6, 3)
    # molecule order in the batch does not change a molecule's output
    g2 = batch_graphs(graphs_from_smiles([smiles[4], smiles[0]]))
    net.eval()
    a = net(g, torch.zeros(6, 4))[[4, 0]]
    b = net(g2, torch.zeros(2, 4))
    torch.testing.assert_close(a, b)
    assert MultitaskMLP(10, 2, (8,), 0.1)(torch.zeros(5, 10)).shape == (5, 2)
    with pytest.raises(ValueError, match="dropout"):
        MultitaskMLP(10, 2, (8,), 1.5)


def test_baselines_are_sklearn_estimators(smiles, logp, cache):
    X = featurize(smiles, FeatureSpec(("morgan",), n_bits=256))
    pipe = make_pipeline(StandardScaler(), make_baseline("rf", "regression", n_estimators=5))
    search = GridSearchCV(pipe, {"randomforestregressor__max_depth": [2, None]}, cv=2).fit(X, logp)
    assert search.best_params_["randomforestregressor__max_depth"] in (2, None)
    for name in baselines_for("classification"):
        est = MaskedMultiTask(make_baseline(name, "classification", n_estimators=10) if name in ("rf", "et")
                              else make_baseline(name, "classification"), "classification")
        y = np.stack([(logp > 2).astype(float), (logp > 1).astype(float)], 1)
        y[0, 1] = np.nan
        p = est.fit(X, y).predict_proba(X)
        assert p.shape == (len(smiles), 2) and (p >= 0).all() and (p <= 1).all()
    with pytest.raises(InputError, match="classification only"):
        make_baseline("nb", "regression")


@pytest.mark.parametrize("kind", ["dnn", "mpnn", "rf"])
def test_model_beats_mean_predictor(kind, smiles, logp, split, cache, tmp_path):
    tr, va, te = split
    s = np.array(smiles)
    m = fit(tmp_path, smiles, logp, split, {"network.name": kind, "train.max_epochs": 40 if kind != "mpnn" else 30,
                                            "train.patience": 40, "train.batch_size": 16, "network.n_estimators": 50,
                                            "features.kinds": ["morgan_count", "rdkit2d"], "features.n_bits": 256})
    pred = m.predict(s[te])
    assert pred.shape == (len(te), 1)
    baseline = _rmse(logp[te], np.full(len(te), logp[tr].mean()))
    assert _rmse(logp[te], pred) < 0.7 * baseline


def test_auto_ensemble_uncertainty_domain_and_save(smiles, logp, split, tmp_path, cache):
    tr, va, te = split
    s = np.array(smiles)
    y = np.stack([logp, np.where(np.arange(64) % 5 == 0, np.nan, logp * 2)], 1)  # 2 tasks, some missing
    m = fit(tmp_path, smiles, y, split, {"train.max_epochs": 5, "network.n_estimators": 20, "features.n_bits": 256})
    assert set(m.selection_["chosen"]) <= {"et", "rf", "hgb", "dnn"} and m.selection_["chosen"]
    assert [c["kind"] for c in m.candidates_] == ["et", "rf", "hgb", "dnn"]  # the rule for <= 2 tasks
    assert m.selection_["val_score"] == min(m.selection_["options"].values())  # lowest val RMSE kept
    mean, std = m.predict_with_uncertainty(s[te])
    assert mean.shape == std.shape == (len(te), 2)
    assert (std >= 0).all() or (m.uncertainty_ == "none" and np.isnan(std).all())
    ad = m.applicability_domain(list(s[tr[:3]]) + ["[Fe+2]"])
    np.testing.assert_allclose(ad[:3], 1.0)
    assert ad[3] < 0.3
    m2 = medlearn.load_run(tmp_path / "run")
    np.testing.assert_allclose(m2.predict(s[te]), mean, rtol=1e-5)
    with pytest.raises(InputError, match="regression model"):
        m.predict_proba(s[te])


def test_seed_ensemble_spread(smiles, logp, split, cache, tmp_path):
    tr, va, te = split
    s = np.array(smiles)
    m = fit(tmp_path, smiles, logp, split, {"network.name": "dnn", "train.ensemble": 3, "train.max_epochs": 3,
                                            "features.n_bits": 256})
    assert len(m.members_) == 3 and [x.seed for x in m.members_] == [0, 1, 2]
    _, std = m.predict_with_uncertainty(s[te])
    assert (std > 0).all() and m.uncertainty_ == "ensemble"


def test_classification_probabilities(smiles, logp, split, cache, tmp_path):
    tr, va, te = split
    s = np.array(smiles)
    y = (logp > np.median(logp)).astype(float)
    m = fit(tmp_path, smiles, y, split, {"network.name": "rf", "network.n_estimators": 50, "features.n_bits": 256})
    assert m.task_type_ == "classification"
    p = m.predict_proba(s[te])
    assert p.shape == (len(te), 1) and ((p >= 0) & (p <= 1)).all()
    assert multitask_binary_metrics(y[te], p, n_boot=0)["roc_auc"]["value"] > 0.7
    assert set(np.unique(m.predict(s[te]))) <= {0.0, 1.0}


def test_dnn_stops_at_a_non_finite_loss(tmp_path):
    """Every neural fit goes through the engine's trainer, which stops at the first NaN loss with one line."""
    from medlearn.engine.callbacks import TrainingDiverged
    from medlearn.engine.members import MemberJob
    from medlearn.tasks.qsar.features import Featurizer, MemberData
    from medlearn.tasks.qsar.members import fit_member
    from medlearn.tasks.qsar.plan import QSARData, QSARPlan

    X = np.ones((16, 4), dtype=np.float32)
    X[3, 0] = np.inf  # an infinite feature makes the first batch's activations, and so its loss, non-finite
    y = np.arange(16, dtype=float)[:, None]
    data = MemberData("regression", Featurizer(FeatureSpec(("morgan",), n_bits=8)), y, y[:4], ["C"] * 16, ["C"] * 4,
                      {"nn": (X, X[:4])})
    plan = QSARPlan(data=QSARData(targets=["y"]))
    plan.network.name, plan.network.dnn.hidden, plan.train.max_epochs, plan.train.batch_size = "dnn", [8], 3, 16
    job = MemberJob("qsar", tmp_path, plan, 0, 1, {"kind": "dnn", "seed": 0}, data, False, False)
    with pytest.raises(TrainingDiverged, match="diverged"):
        fit_member(job)


def test_member_data_travels_to_worker_processes(smiles, logp, cache, tmp_path):
    """The payload a member trains from pickles (members run in spawned processes on several cores)."""
    import pickle

    from medlearn.chem.data import load_smiles_csv
    from medlearn.chem.splits import split_molecules
    from medlearn.tasks.qsar.data import QSARDataset
    from medlearn.tasks.qsar.plan import plan_qsar
    from medlearn.tasks.qsar.task import member_data

    csv = tmp_path / "m.csv"
    pd.DataFrame({"smiles": smiles, "logp": logp}).to_csv(csv, index=False)
    table = load_smiles_csv(csv, "smiles", ["logp"])
    splits = split_molecules(table, "random")
    plan = plan_qsar(str(csv), "smiles", ["logp"], "regression", "random", splits.sizes(), [])
    payload = member_data(plan, QSARDataset(table, "regression", "smiles"), splits, ["dnn", "rf", "knn"])
    back = pickle.loads(pickle.dumps(payload))
    assert set(back.views) == {"nn", "tree", "bits"} and back.views["nn"][0].shape[0] == splits.sizes()["train"]
    np.testing.assert_array_equal(back.views["tree"][1], payload.views["tree"][1])
