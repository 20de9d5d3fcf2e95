"""Which uncertainty a model gives, said everywhere: a forest's spread over its trees, an ensemble's spread
over members, or none (NaN) — never a made-up 0.0 (issue 16)."""

import numpy as np
import pandas as pd

import medlearn
from medlearn.tasks.qsar.members import QSARMember
from medlearn.tasks.qsar.model import QSARModel, uncertainty_kind
from tests.conftest import cli_exit_code

UNSEEN = ["CCCCCCCCCCCCCCCCO", "Clc1ccc(CCCC)cc1", "CC(C)(C)c1ccccc1", "OCCCCCCCCCCN"]


def test_a_random_forest_alone_reports_its_spread_over_trees(rf_run, tmp_path):
    model = medlearn.load_run(rf_run)
    assert model.uncertainty_ == "trees" and model.describe()["uncertainty"] == "trees"
    assert "tree" in model.describe()["uncertainty_meaning"]
    mean, std = model.predict_with_uncertainty(UNSEEN)
    assert np.isfinite(std).all() and (std > 0).all()  # trees disagree away from their training molecules
    forest = model.members_[0].predictor.estimators_[0]
    per_tree = np.stack([t.predict(model.featurizer_.view(model.featurizer_.raw(UNSEEN), "tree"))
                         for t in forest.estimators_])
    np.testing.assert_allclose(std[:, 0], per_tree.std(0), rtol=1e-6)
    np.testing.assert_allclose(mean[:, 0], per_tree.mean(0), rtol=1e-5)
    csv = tmp_path / "new.csv"
    pd.DataFrame({"smiles": UNSEEN}).to_csv(csv, index=False)
    assert cli_exit_code(["qsar", "predict", rf_run, csv, "-o", tmp_path / "p.csv"]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert set(table["uncertainty"]) == {"trees"} and (table["logp_std"] > 0).all()


def test_a_model_without_uncertainty_writes_nan_and_says_none(large_csv, tmp_path, cache):
    assert uncertainty_kind([QSARMember("hgb", 0, None)]) == "none"  # boosting alone: no spread to report
    assert uncertainty_kind([QSARMember("hgb", 0, None), QSARMember("dnn", 0, None)]) == "ensemble"
    model = QSARModel({"network.name": "dt"}, n_boot=0, targets=["logp"]).fit(large_csv, tmp_path / "run")
    mean, std = model.predict_with_uncertainty(UNSEEN)
    assert np.isfinite(mean).all() and np.isnan(std).all()
    assert model.describe()["uncertainty"] == "none"
    csv = tmp_path / "new.csv"
    pd.DataFrame({"smiles": UNSEEN}).to_csv(csv, index=False)
    model.predict_files(csv, tmp_path / "p.csv")
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["logp_std"].isna().all() and set(table["uncertainty"]) == {"none"}


def test_invalid_smiles_get_nan_rows_not_a_guess(rf_run):
    model = medlearn.load_run(rf_run)
    values = model.predict_values(["CCO", "not a molecule", ""])
    assert np.isfinite(values[0]).all() and np.isnan(values[1:]).all()
    assert np.isnan(model.applicability_domain(["C1CC"])).all()
