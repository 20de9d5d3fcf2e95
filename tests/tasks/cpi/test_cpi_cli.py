"""The cpi CLI (mounted as ``cpi``): train -> predict -> evaluate on a tiny CSV, members side by side; bad
input and a model file that would run code exit 2 in one line. The app is mounted on a fresh root and run
through ``medlearn.cli.main.main``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import typer

import medlearn
import medlearn.cli.main as cli_main
from medlearn.cli.cpi import app as cpi_app
from medlearn.engine.parallel import available_cores
from tests.conftest import cli_exit_code


def _root_app() -> typer.Typer:
    root = typer.Typer(no_args_is_help=True)
    root.add_typer(cpi_app, name="cpi")

    @root.callback()
    def _root() -> None:
        """test root"""

    return root


@pytest.fixture(autouse=True)
def _mount_cpi(monkeypatch):
    monkeypatch.setattr(cli_main, "app", _root_app())


TINY = ["--set", "train.max_epochs=2", "--set", "network.embed_dim=8", "--set", "network.filters=4",
        "--set", "network.hidden=[16]", "--set", "network.protein_kernel=4", "--set", "train.batch_size=16",
        "--set", "train.ensemble=2", "--bootstrap", "50"]


_run_main = cli_exit_code


def _pairs(path):
    rng = np.random.default_rng(0)
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "c1ccncc1", "OCCO"]
    seqs = ["".join(rng.choice(list("ACDEFGHIKL"), 40)) for _ in range(5)]
    rows = [{"drug": s, "target_sequence": q, "affinity": 5 + i * 0.1 + j * 0.2}
            for i, s in enumerate(smiles) for j, q in enumerate(seqs)]
    rows.append({"drug": "C1CC(", "target_sequence": seqs[0], "affinity": 6.0})
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-member run (members side by side on the CPU cores) and its CSV; the train output."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("cpi")
    csv = root / "pairs.csv"
    _pairs(csv)
    run = root / "run"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(cli_main, "app", _root_app())
        code = cli_exit_code(["cpi", "train", str(csv), "-o", str(run), "--smiles", "drug", "--value", "affinity",
                              "--quiet", *TINY])
    assert code == 0, out.getvalue()
    return csv, run, " ".join(out.getvalue().split())


def test_train_predict_evaluate(trained, tmp_path):
    csv, run, out = trained
    assert "skipped 1 row(s)" in out and "row(s) 30" in out
    assert "ms per step measured here" in out  # the expected duration, printed before training
    assert f"{min(2, available_cores())} at a time" in out  # members side by side on the cores
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "cpi" and metrics["problem"] == "regression"
    assert metrics["n_pairs"]["train"] + metrics["n_pairs"]["val"] + metrics["n_pairs"]["test"] == 30
    assert np.isfinite(metrics["test"]["mse"]["value"]) and 0 <= metrics["test"]["ci"]["value"] <= 1
    for key in ("ci", "mse"):
        assert set(metrics["test"][key]) >= {"value", "ci95"}
    assert (run / "report.html").exists() and not any(k.startswith("_") for k in metrics)
    splits = json.loads((run / "splits.json").read_text())
    assert splits["unit"] == "pair" and 30 not in splits["train"] + splits["val"] + splits["test"]  # the bad row
    pred_csv = tmp_path / "pred.csv"
    assert _run_main(["cpi", "predict", str(run), str(csv), "-o", str(pred_csv), "--smiles", "drug"]) == 0
    df = pd.read_csv(pred_csv)
    assert len(df) == 31 and df["prediction"].iloc[:30].notna().all() and np.isnan(df["prediction"].iloc[30])
    assert (df["prediction_std"].iloc[:30] >= 0).all() and df["prediction_std"].iloc[:30].max() > 0
    assert len(metrics["ensemble"]["test_members"]) == 2
    assert metrics["training"]["members"] == 2 and len(metrics["training"]["per_member"]) == 2
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    assert _run_main(["cpi", "evaluate", str(run), str(csv), "--smiles", "drug", "--value", "affinity"]) == 0
    evaluation = json.loads((run / "evaluations" / "pairs" / "metrics.json").read_text())
    assert evaluation["all"]["n"] == 30 and evaluation["all"]["ci"]["ci95"] is not None
    assert evaluation["seen_in_training"]["items"] == metrics["n_pairs"]["train"] + metrics["n_pairs"]["val"]
    assert "optimistic" in (run / "evaluations" / "pairs" / "report.html").read_text()
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before  # run files untouched
    model = medlearn.load_run(run)
    assert model.describe()["task"] == "cpi" and model.describe()["ensemble"] == 2


def test_unfinished_or_finished_runs_are_kept(trained, tmp_path, capsys):
    csv, run, _ = trained
    before = (run / "metrics.json").read_bytes()
    args = ["cpi", "train", str(csv), "-o", str(run), "--smiles", "drug", "--value", "affinity", *TINY]
    assert _run_main(args) == 2 and "finished run" in capsys.readouterr().err
    assert _run_main([*args, "--force", "--set", "train.nope=1"]) == 2  # checked before anything is deleted
    assert "unknown plan field" in capsys.readouterr().err and (run / "metrics.json").read_bytes() == before
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.json").unlink()
    assert _run_main(["cpi", "predict", str(copy), str(csv), "-o", str(tmp_path / "p.csv"), "--smiles", "drug"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not finish" in err[0]


def test_bad_input_exits_2_naming_the_file(tmp_path, capsys):
    csv = tmp_path / "noseq.csv"
    csv.write_text("smiles,value\nCCO,1\n")
    assert _run_main(["cpi", "train", str(csv), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noseq.csv" in err[0] and "sequence" in err[0]
    assert _run_main(["cpi", "train", str(tmp_path), "--dataset", "davis", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ligands_can.txt" in err[0]
    assert _run_main(["cpi", "predict", str(tmp_path / "nope"), str(csv), "-o", str(tmp_path / "o.csv")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    bad = tmp_path / "words.csv"
    bad.write_text("smiles,sequence,value\nCCO,MKVL,strong\n")
    assert _run_main(["cpi", "train", str(bad), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "words.csv" in err[0] and "'strong'" in err[0]
    good = tmp_path / "ok.csv"
    _pairs(good)
    assert _run_main(["cpi", "train", str(good), "-o", str(tmp_path / "r"), "--smiles", "drug", "--value", "affinity",
                      "--set", "network.head=sum"]) == 2
    assert "network.head" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing created by a refused start


def test_plan_fields_lists_the_renamed_fields(capsys):
    assert _run_main(["cpi", "plan-fields"]) == 0
    out = capsys.readouterr().out
    for field in ("network.name", "network.compound", "network.head", "train.max_minutes", "train.ensemble",
                  "train.seed", "data.val_fold"):
        assert field in out
    assert "threads" not in out and "max_time_minutes" not in out
