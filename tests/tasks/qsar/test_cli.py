"""``medlearn qsar`` end to end on a tiny CSV (a few dozen molecules, a few epochs)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem import Crippen

from tests.conftest import cli_exit_code

MEDLEARN = Path(sys.executable).parent / "medlearn"


def _smiles():
    out = []
    for n in range(1, 9):
        c = "C" * n
        out += [c, c + "O", c + "N", c + "Cl", "OC(=O)" + c, "c1ccccc1" + c, c + "C(=O)OC", "Oc1ccc(" + c + ")cc1"]
    return out


@pytest.fixture()
def csv(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path / "cache"))
    s = _smiles()
    y = [Crippen.MolLogP(Chem.MolFromSmiles(x)) for x in s]
    s[7] = "xyz"
    path = tmp_path / "mols.csv"
    pd.DataFrame({"SMILES": s, "logp": y, "name": [f"m{i}" for i in range(len(s))]}).to_csv(path, index=False)
    return path


_run = cli_exit_code


def test_train_predict_evaluate(csv, tmp_path, capsys):
    run = tmp_path / "run"
    code = _run(["qsar", "train", csv, "--smiles", "SMILES", "--target", "logp", "-o", run, "--set",
                 "network.name=dnn", "--set", "train.max_epochs=3", "--set", "train.ensemble=2", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "row(s) 7" in out  # the invalid SMILES row is reported
    for f in ("plan.json", "config.yaml", "model.pt", "metrics.json", "report.html", "versions.json", "splits.json"):
        assert (run / f).exists(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"train", "val", "test"} <= set(metrics) and metrics["test"]["rmse"]["value"] > 0
    assert (run / "figures" / "parity.png").exists()
    splits = json.loads((run / "splits.json").read_text())
    assert 7 not in splits["train"] + splits["val"] + splits["test"]

    # a finished run is never overwritten without --force
    assert _run(["qsar", "train", csv, "--smiles", "SMILES", "--target", "logp", "-o", run]) == 2
    assert "--force" in capsys.readouterr().err

    pred = tmp_path / "pred.csv"
    assert _run(["qsar", "predict", run, csv, "-o", pred]) == 0
    df = pd.read_csv(pred)
    assert {"name", "logp_pred", "logp_std", "applicability_domain", "uncertainty"} <= set(df.columns)
    assert np.isnan(df.loc[7, "logp_pred"]) and df["logp_pred"].notna().sum() == len(df) - 1
    assert (df["logp_std"].dropna() > 0).all()  # two seeds disagree a little
    assert set(df["uncertainty"]) == {"ensemble"}
    assert np.isclose(df.loc[0, "applicability_domain"], 1.0) or 0 not in splits["train"]

    capsys.readouterr()
    assert _run(["qsar", "evaluate", run, csv]) == 0
    assert "rmse" in capsys.readouterr().out
    assert "rmse" in json.loads((run / "evaluations" / "mols" / "metrics.json").read_text())["all"]


def test_compare_writes_table_and_plot(csv, tmp_path):
    out = tmp_path / "cmp"
    assert _run(["qsar", "compare", csv, "--smiles", "SMILES", "-t", "logp", "-o", out, "--models", "rf,dt,linear",
                 "--split", "scaffold", "-q", "--set", "network.n_estimators=20"]) == 0
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["rf", "dt", "linear"]
    assert all("test_rmse" in r for r in rows)
    assert (out / "comparison.png").exists() and (out / "comparison.md").read_text().count("\n") == 5
    assert (out / "report.html").exists()
    # a finished comparison is not overwritten without --force
    assert _run(["qsar", "compare", csv, "--smiles", "SMILES", "-t", "logp", "-o", out, "--models", "dt", "-q"]) == 2


def test_bad_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("compound,value\nCCO,1\n")
    res = subprocess.run([str(MEDLEARN), "qsar", "train", str(bad), "--target", "value", "-o",
                          str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.csv" in lines[0] and "SMILES" in lines[0]
    assert _run(["qsar", "train", bad, "--smiles", "compound", "--target", "nope", "-o", tmp_path / "r"]) == 2
    assert not (tmp_path / "r").exists()  # a refused start leaves nothing behind


def test_plan_overrides_reach_the_plan_and_are_printed(csv, tmp_path, capsys):
    run = tmp_path / "run_set"
    overrides = tmp_path / "plan.yaml"
    overrides.write_text("train:\n  max_epochs: 2\n")
    code = _run(["qsar", "train", csv, "--smiles", "SMILES", "--target", "logp", "-o", run, "--set", "network.name=rf",
                 "--set", "network.n_estimators=7", "--set", "features.kinds=[morgan]", "--plan", overrides,
                 "--bootstrap", "20"])
    assert code == 0
    plan = json.loads((run / "plan.json").read_text())
    assert (plan["network"]["n_estimators"], plan["features"]["kinds"], plan["train"]["max_epochs"],
            plan["network"]["name"]) == (7, ["morgan"], 2, "rf")
    assert "n_estimators: 7" in capsys.readouterr().out  # the plan is printed before training


@pytest.mark.parametrize("item, words", [("data.split=scaffold", "decided by the data"),
                                         ("no_such_field=1", "unknown plan field"),
                                         ("network.n_estimators=many", "n_estimators"),
                                         ("network.name=forest", "unknown model")])
def test_bad_plan_override_exits_2_before_training(csv, tmp_path, capsys, item, words):
    run = tmp_path / "run_bad"
    code = _run(["qsar", "train", csv, "--smiles", "SMILES", "--target", "logp", "-o", run, "--set", item])
    assert code == 2
    assert words in capsys.readouterr().err
    assert not run.exists()


def test_plan_fields_lists_the_renamed_fields(capsys):
    assert _run(["qsar", "plan-fields"]) == 0
    out = capsys.readouterr().out
    for field in ("network.name", "train.ensemble", "train.max_epochs", "features.kinds", "network.n_estimators"):
        assert field in out
