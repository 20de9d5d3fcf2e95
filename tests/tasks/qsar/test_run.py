"""A QSAR run keeps the contract: CIs in metrics.json, evaluation that says which molecules the model has
seen, model files that cannot run code, and a resume that reuses finished members (issue 16 / 17)."""

import json

import numpy as np
import pandas as pd

import medlearn
from tests.conftest import cli_exit_code
from tests.tasks.qsar.conftest import crippen_logp, many_smiles


def test_metrics_json_has_95_cis_over_molecules(rf_run):
    metrics = json.loads((rf_run / "metrics.json").read_text())
    assert metrics["task"] == "qsar" and metrics["metric"] == "rmse"
    for split in ("val", "test"):
        entry = metrics[split]["rmse"]
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi and metrics[split]["n"] == 12
        assert metrics[split]["bootstrap"]["unit"] == "molecule"
    assert metrics["train"]["rmse"]["ci95"] is None  # a fit, not an estimate
    assert metrics["model"]["uncertainty"] == "trees"


def test_classification_metrics_json_has_roc_auc_cis(large_csv, tmp_path, cache):
    model = medlearn.QSARModel({"network.name": "rf", "network.n_estimators": 20}, n_boot=100,
                               targets=["lipophilic"], split="stratified").fit(large_csv, tmp_path / "run")
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    lo, hi = test["roc_auc"]["ci95"]
    assert lo <= test["roc_auc"]["value"] <= hi and "pr_auc" in test and model.task_type_ == "classification"


def test_evaluate_on_training_molecules_says_so(rf_run, tmp_path, capsys):
    splits = json.loads((rf_run / "splits.json").read_text())
    smiles = many_smiles()
    from rdkit import Chem

    before = {p.name: p.stat().st_mtime_ns for p in rf_run.iterdir() if p.is_file()}
    rows = splits["train"][:20] + splits["test"]  # 20 trained on, written another way, and the 12 unseen
    written = [Chem.MolToSmiles(Chem.MolFromSmiles(smiles[r]), doRandom=True, canonical=False) for r in rows[:20]]
    frame = pd.DataFrame({"smiles": written + [smiles[r] for r in rows[20:]],
                          "logp": crippen_logp([smiles[r] for r in rows])})
    csv = tmp_path / "mixed.csv"
    frame.to_csv(csv, index=False)
    assert cli_exit_code(["qsar", "evaluate", rf_run, csv, "--name", "mixed", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "20 of 32" in out and "learnt from" in out
    folder = rf_run / "evaluations" / "mixed"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["seen_in_training"] == {"items": 20, "of": 32}
    assert metrics["unseen"]["n"] == 12  # the rest scored on their own
    html = (folder / "report.html").read_text()
    assert "20 of 32" in html and "20 in its training split" in html
    assert {p.name: p.stat().st_mtime_ns for p in rf_run.iterdir() if p.is_file()} == before  # run untouched


def test_a_resumed_run_reuses_its_finished_members(large_csv, tmp_path, cache, monkeypatch):
    from medlearn.tasks.qsar import task as qsar_task

    run = tmp_path / "run"
    args = ["qsar", "train", large_csv, "--target", "logp", "-o", run, "--set", "network.candidates=[et,rf,dt]",
            "--set", "network.n_estimators=10", "--bootstrap", "20", "--quiet"]
    assert cli_exit_code(args) == 0
    first = run / "checkpoints" / "member0" / "member.pt"
    stamp = first.stat().st_mtime_ns
    # as if killed after the first member: the others and the run's results are not there
    for tag in ("member1", "member2"):
        (run / "checkpoints" / tag / "member.pt").unlink()
    (run / "metrics.json").unlink()
    trained = []
    original = qsar_task.fit_member
    monkeypatch.setattr(qsar_task, "fit_member", lambda job: trained.append(job.spec["kind"]) or original(job))
    assert cli_exit_code([*args, "--resume"]) == 0
    assert trained == ["rf", "dt"]  # et was finished: reused, not trained again
    assert first.stat().st_mtime_ns == stamp
    model = medlearn.load_run(run)
    assert [c["kind"] for c in model.candidates_] == ["et", "rf", "dt"]
    assert np.isfinite(model.predict_values(["CCCO"])).all()
