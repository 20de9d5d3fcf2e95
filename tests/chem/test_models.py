"""Models learn a tiny learnable target (Crippen logP) better than predicting the mean."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medlearn.chem.api import QSARModel, load_model, save_model
from medlearn.chem.baselines import MaskedMultiTask, baselines_for, make_baseline
from medlearn.chem.featurize import FeatureSpec, featurize
from medlearn.chem.graph import batch_graphs, graphs_from_smiles
from medlearn.chem.nets import DMPNN, MultitaskMLP
from medlearn.errors import InputError

torch.set_num_threads(1)


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.ravel(a) - np.ravel(b)) ** 2)))


@pytest.fixture(scope="module")
def split():
    idx = np.random.RandomState(0).permutation(64)
    return idx[:44], idx[44:54], idx[54:]


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
def test_model_beats_mean_predictor(kind, smiles, logp, split, cache):
    tr, va, te = split
    s = np.array(smiles)
    m = QSARModel(model=kind, max_epochs=40 if kind != "mpnn" else 30, patience=40, batch_size=16,
                  n_estimators=50, features="morgan_count+rdkit2d", n_bits=256)
    m.fit(s[tr], logp[tr], s[va], logp[va])
    pred = m.predict(s[te])
    assert pred.shape == (len(te), 1)
    baseline = _rmse(logp[te], np.full(len(te), logp[tr].mean()))
    assert _rmse(logp[te], pred) < 0.7 * baseline


def test_auto_ensemble_uncertainty_domain_and_save(smiles, logp, split, tmp_path, cache):
    tr, va, te = split
    s = np.array(smiles)
    y = np.stack([logp, np.where(np.arange(64) % 5 == 0, np.nan, logp * 2)], 1)  # 2 tasks, some missing
    m = QSARModel(model="auto", max_epochs=5, n_estimators=20, n_bits=256).fit(s[tr], y[tr], s[va], y[va])
    assert set(m.selection_["chosen"]) <= {"et", "rf", "hgb", "dnn"} and m.selection_["chosen"]
    assert m.selection_["val_score"] == min(m.selection_["options"].values())  # lowest val RMSE kept
    mean, std = m.predict_with_uncertainty(s[te])
    assert mean.shape == std.shape == (len(te), 2) and (std >= 0).all()
    ad = m.applicability_domain(list(s[tr[:3]]) + ["[Fe+2]"])
    np.testing.assert_allclose(ad[:3], 1.0)
    assert ad[3] < 0.3
    save_model(m, tmp_path / "m.pt")
    m2, _ = load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(m2.predict(s[te]), mean, rtol=1e-5)
    with pytest.raises(InputError, match="regression model"):
        m.predict_proba(s[te])


def test_seed_ensemble_spread(smiles, logp, split, cache):
    tr, va, te = split
    s = np.array(smiles)
    m = QSARModel(model="dnn", n_seeds=3, max_epochs=3, n_bits=256).fit(s[tr], logp[tr], s[va], logp[va])
    assert len(m.members_) == 3
    _, std = m.predict_with_uncertainty(s[te])
    assert (std > 0).all()


def test_classification_probabilities(smiles, logp, split, cache):
    tr, va, te = split
    s = np.array(smiles)
    y = (logp > np.median(logp)).astype(float)
    m = QSARModel(model="rf", n_estimators=50, n_bits=256).fit(s[tr], y[tr], s[va], y[va])
    assert m.task_type_ == "classification"
    p = m.predict_proba(s[te])
    assert p.shape == (len(te), 1) and ((p >= 0) & (p <= 1)).all()
    assert m.evaluate(s[te], y[te])["roc_auc"] > 0.7


def test_dnn_stops_at_a_non_finite_loss():
    """The QSAR trainer stops at the first NaN loss with one line, like the imaging trainers."""
    from medlearn.chem.neural import DNNQSAR
    from medlearn.engine.callbacks import TrainingDiverged

    X = np.ones((16, 4), dtype=np.float32)
    X[3, 0] = np.inf  # an infinite feature makes the first batch's activations, and so its loss, non-finite
    with pytest.raises(TrainingDiverged, match="diverged"):
        DNNQSAR(hidden=(8,), max_epochs=3, batch_size=16).fit(X, np.arange(16, dtype=float))
