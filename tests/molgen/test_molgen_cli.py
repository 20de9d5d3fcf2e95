"""The molgen CLI app (mounted as ``generate``): train -> sample -> evaluate on a tiny CSV; bad input
exits 2 in one line. The app is mounted on a fresh root and run through ``medlearn.cli.main.main``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer

import medlearn.cli.main as cli_main
from medlearn.molgen.cli import app as molgen_app
from tests.conftest import cli_exit_code


@pytest.fixture(autouse=True)
def _mount_molgen(monkeypatch):
    root = typer.Typer(no_args_is_help=True)
    root.add_typer(molgen_app, name="generate")

    @root.callback()
    def _root() -> None:
        """test root"""

    monkeypatch.setattr(cli_main, "app", root)


TINY = ["--set", "train.max_epochs=2", "--set", "net.hidden=32", "--set", "net.layers=1",
        "--set", "eval_samples=30", "--set", "train.batch_size=16"]
SMILES = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "c1ccncc1", "OCC(O)CO", "CC(N)Cc1ccccc1",
          "Nc1ccc(cc1)S(N)(=O)=O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "COc1ccccc1OC"]


def test_train_sample_evaluate(tmp_path, capsys):
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"name": range(12), "smi": SMILES + ["C1CC(", "XYZ"]}).to_csv(csv, index=False)
    run = tmp_path / "run"
    assert _run_main(["generate", "train", str(csv), "--smiles", "smi", "-o", str(run), "--quiet", *TINY]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 invalid SMILES at row(s) 10, 11" in " ".join(out.split())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["n_invalid_rows"] == 2
    assert metrics["validity"] >= 0.8
    assert (run / "report.html").exists()
    out_csv = str(tmp_path / "s.csv")
    assert _run_main(["generate", "sample", str(run), "-n", "15", "-o", out_csv, "--temperature", "0.8"]) == 0
    df = pd.read_csv(tmp_path / "s.csv")
    assert len(df) == 15 and set(df.columns) >= {"smiles", "valid"}
    assert _run_main(["generate", "evaluate", str(run), "-n", "20"]) == 0
    assert json.loads((run / "metrics.json").read_text())["n_generated"] == 20
    # a finished run is not overwritten without --force
    assert _run_main(["generate", "train", str(csv), "--smiles", "smi", "-o", str(run), "--quiet", *TINY]) == 2


_run_main = cli_exit_code


def test_bad_csv_exits_2_naming_the_file(tmp_path, capsys):
    csv = tmp_path / "nosmiles.csv"
    csv.write_text("a,b\n1,2\n")
    assert _run_main(["generate", "train", str(csv), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosmiles.csv" in err[0]
    assert _run_main(["generate", "sample", str(tmp_path / "missing"), "-n", "3", "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]


def test_sample_filtered_by_a_qsar_run(tmp_path):
    from medlearn.chem.api import QSARModel, save_model

    smiles = SMILES * 2
    y = np.array([s.count("N") + s.count("n") for s in smiles], dtype=float)
    qsar = QSARModel(model="rf", features="morgan", n_estimators=20, use_cache=False).fit(smiles, y)
    (tmp_path / "qsar").mkdir()
    save_model(qsar, tmp_path / "qsar" / "model.pt")
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": SMILES}).to_csv(csv, index=False)
    run = tmp_path / "run"
    assert _run_main(["generate", "train", str(csv), "-o", str(run), "--quiet", *TINY]) == 0
    out_csv = tmp_path / "f.csv"
    assert _run_main(["generate", "sample", str(run), "-n", "5", "-o", str(out_csv), "--qsar", str(tmp_path / "qsar"),
                      "--min-score", "0.3", "--focus", "1"]) == 0
    df = pd.read_csv(out_csv)
    assert len(df) > 0 and (df["score"] >= 0.3).all() and df["valid"].all()
    assert _run_main(["generate", "sample", str(run), "-n", "5", "-o", str(out_csv), "--min-score", "1"]) == 2
