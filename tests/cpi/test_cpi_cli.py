"""The cpi CLI app (mounted as ``cpi``): train -> predict -> evaluate on a tiny CSV; bad input exits 2
in one line. The app is mounted on a fresh root and run through ``medlearn.cli.main.main``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer

import medlearn.cli.main as cli_main
from medlearn.cpi.cli import app as cpi_app
from tests.conftest import cli_exit_code


@pytest.fixture(autouse=True)
def _mount_cpi(monkeypatch):
    root = typer.Typer(no_args_is_help=True)
    root.add_typer(cpi_app, name="cpi")

    @root.callback()
    def _root() -> None:
        """test root"""

    monkeypatch.setattr(cli_main, "app", root)


TINY = ["--set", "train.max_epochs=2", "--set", "net.embed_dim=8", "--set", "net.filters=4",
        "--set", "net.hidden=[16]", "--set", "net.protein_kernel=4", "--set", "train.batch_size=16",
        "--set", "train.ensemble=2", "--set", "train.threads=1"]


_run_main = cli_exit_code


def _pairs(path):
    rng = np.random.default_rng(0)
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "c1ccncc1", "OCCO"]
    seqs = ["".join(rng.choice(list("ACDEFGHIKL"), 40)) for _ in range(5)]
    rows = [{"drug": s, "target_sequence": q, "affinity": 5 + i * 0.1 + j * 0.2}
            for i, s in enumerate(smiles) for j, q in enumerate(seqs)]
    rows.append({"drug": "C1CC(", "target_sequence": seqs[0], "affinity": 6.0})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_train_predict_evaluate(tmp_path, capsys):
    csv = tmp_path / "pairs.csv"
    _pairs(csv)
    run = tmp_path / "run"
    assert _run_main(["cpi", "train", str(csv), "-o", str(run), "--smiles", "drug", "--value", "affinity",
                      "--quiet", *TINY]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped 1 row(s)" in out and "row(s) 30" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_pairs"]["train"] + metrics["n_pairs"]["val"] + metrics["n_pairs"]["test"] == 30
    assert np.isfinite(metrics["test"]["mse"]) and 0 <= metrics["test"]["ci"] <= 1
    assert (run / "report.html").exists()
    pred_csv = tmp_path / "pred.csv"
    assert _run_main(["cpi", "predict", str(run), str(csv), "-o", str(pred_csv), "--smiles", "drug"]) == 0
    df = pd.read_csv(pred_csv)
    assert len(df) == 31 and df["prediction"].iloc[:30].notna().all() and np.isnan(df["prediction"].iloc[30])
    assert (df["prediction_std"].iloc[:30] >= 0).all() and df["prediction_std"].iloc[:30].max() > 0
    assert len(metrics["ensemble"]["test_members"]) == 2
    assert _run_main(["cpi", "evaluate", str(run), str(csv), "--smiles", "drug", "--value", "affinity"]) == 0
    assert json.loads((run / "evaluation.json").read_text())["n"] == 30


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
