import numpy as np
import pytest

from medlearn.chem.data import describe_invalid, infer_task_type, load_smiles_csv
from medlearn.errors import InputError


def test_invalid_smiles_reported_and_skipped(regression_csv):
    t = load_smiles_csv(regression_csv, "smiles", ["logp", "acid"])
    assert t.invalid_rows == [3, 10]
    assert len(t) == 62 and 3 not in t.rows and 10 not in t.rows
    assert "3, 10" in describe_invalid(t)


def test_missing_labels_are_nan(regression_csv):
    t = load_smiles_csv(regression_csv, "smiles", ["acid"])
    pos5 = int(np.flatnonzero(t.rows == 5)[0])
    assert np.isnan(t.y[pos5, 0])
    assert np.isnan(t.y).sum() == 2
    assert infer_task_type(t.y) == "classification"
    assert infer_task_type(load_smiles_csv(regression_csv, "smiles", ["logp"]).y) == "regression"


def test_bad_inputs_raise_input_error(regression_csv, tmp_path):
    with pytest.raises(InputError, match="unknown target"):
        load_smiles_csv(regression_csv, "smiles", ["nope"])
    with pytest.raises(InputError, match="no column 'smi'"):
        load_smiles_csv(regression_csv, "smi", ["logp"])
    with pytest.raises(InputError, match="not found"):
        load_smiles_csv(tmp_path / "missing.csv", "smiles", ["logp"])
    bad = tmp_path / "text.csv"
    bad.write_text("smiles,y\nCCO,high\n")
    with pytest.raises(InputError, match="non-numeric"):
        load_smiles_csv(bad, "smiles", ["y"])


def test_check_targets_names_a_degenerate_column(tmp_path):
    from medlearn.chem.data import check_targets

    path = tmp_path / "t.csv"
    path.write_text("smiles,ok,flat,empty\nCCO,1.5,2,\nCCN,0.5,2,\nCCC,2.5,2,\n")
    check_targets(load_smiles_csv(path, "smiles", ["ok"]))
    with pytest.raises(InputError, match="'flat' has a single value"):
        check_targets(load_smiles_csv(path, "smiles", ["ok", "flat"]))
    with pytest.raises(InputError, match="'empty' has no values"):
        check_targets(load_smiles_csv(path, "smiles", ["empty"]))
    with pytest.raises(InputError, match="'ok' has the value 1.5; classification needs labels 0/1"):
        check_targets(load_smiles_csv(path, "smiles", ["ok"]), "classification")
