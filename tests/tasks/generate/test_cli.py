"""``medlearn generate``: train -> predict/sample -> evaluate on a tiny CSV through the CLI; bad input exits 2 in
one line; evaluate never touches the run's own files; a model file that would run code is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightning.pytorch.callbacks import Callback

import medlearn
from tests.conftest import cli_exit_code

TINY = ["--set", "train.max_epochs=2", "--set", "network.hidden=32", "--set", "network.layers=1",
        "--set", "eval_samples=30", "--set", "train.batch_size=16", "--bootstrap", "50"]
SMILES = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "c1ccncc1", "OCC(O)CO", "CC(N)Cc1ccccc1",
          "Nc1ccc(cc1)S(N)(=O)=O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "COc1ccccc1OC"]

_run_main = cli_exit_code


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A finished run on 10 molecules (+ 2 invalid rows) in a CSV whose SMILES column is 'smi'."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("generate")
    csv = root / "mols.csv"
    pd.DataFrame({"name": range(12), "smi": SMILES + ["C1CC(", "XYZ"]}).to_csv(csv, index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _run_main(["generate", "train", csv, "--smiles", "smi", "-o", root / "run", "--quiet", *TINY]) == 0
    return csv, root / "run", out.getvalue()


def test_train_writes_the_run_directory(trained):
    csv, run, printed = trained
    assert "skipped 2 invalid SMILES at row(s) 10, 11" in " ".join(printed.split())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "generate" and metrics["training"]["n_invalid_rows"] == 2
    assert metrics["validity"]["value"] >= 0.8 and metrics["n_generated"] == 30
    for name in ("validity", "uniqueness", "novelty"):
        lo, hi = metrics[name]["ci95"]
        assert lo <= metrics[name]["value"] <= hi
    assert (run / "report.html").exists()
    splits = json.loads((run / "splits.json").read_text())
    assert splits["unit"] == "molecule" and len(splits["val"]) >= 1
    assert sorted(splits["train"] + splits["val"]) == list(range(10)) and not splits["test"]  # CSV rows
    plan = json.loads((run / "plan.json").read_text())
    assert plan["network"]["name"] == "lstm" and plan["train"]["max_minutes"] == 8.0 and plan["train"]["seed"] == 0


def test_predict_and_its_alias_sample(trained, tmp_path):
    _, run, _ = trained
    assert _run_main(["generate", "sample", run, "-n", "15", "-o", tmp_path / "s.csv", "--temperature", "0.8"]) == 0
    df = pd.read_csv(tmp_path / "s.csv")
    assert len(df) == 15 and set(df.columns) >= {"smiles", "valid"}
    assert _run_main(["generate", "predict", run, "-n", "15", "-o", tmp_path / "p.csv", "--temperature", "0.8"]) == 0
    assert (tmp_path / "p.csv").read_text() == (tmp_path / "s.csv").read_text()  # one command, two names


def test_evaluate_writes_only_its_own_folder_against_the_given_molecules(trained, tmp_path):
    csv, run, _ = trained
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()}
    assert _run_main(["generate", "evaluate", run, csv, "--smiles", "smi", "-n", "20", "--name", "ref"]) == 0
    ev = json.loads((run / "evaluations" / "ref" / "metrics.json").read_text())
    assert ev["n_generated"] == 20 and ev["seen_in_training"] == {"items": 10, "of": 10}
    assert (run / "evaluations" / "ref" / "report.html").exists()
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()} == before
    assert json.loads((run / "metrics.json").read_text())["n_generated"] == 30  # the run's metrics stay its own
    # novelty is measured against DATA: the very molecules the same seed samples are none of them new
    assert _run_main(["generate", "predict", run, "-n", "30", "-o", tmp_path / "own.csv"]) == 0
    assert _run_main(["generate", "evaluate", run, tmp_path / "own.csv", "--name", "own", "--bootstrap", "50"]) == 0
    own = json.loads((run / "evaluations" / "own" / "metrics.json").read_text())
    saved = json.loads((run / "metrics.json").read_text())
    assert own["validity"] == saved["validity"] and own["novelty"]["value"] == 0.0


def test_finished_run_is_not_overwritten(trained, capsys):
    csv, run, _ = trained
    assert _run_main(["generate", "train", csv, "--smiles", "smi", "-o", run, "--quiet", *TINY]) == 2
    assert "finished run" in capsys.readouterr().err


def test_bad_input_exits_2_naming_the_file(tmp_path, capsys):
    csv = tmp_path / "nosmiles.csv"
    csv.write_text("a,b\n1,2\n")
    assert _run_main(["generate", "train", csv, "-o", tmp_path / "r"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosmiles.csv" in err[0]
    assert _run_main(["generate", "sample", tmp_path / "missing", "-n", "3", "-o", tmp_path / "o.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]


def test_refusals_before_anything_is_written(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    pd.DataFrame({"smiles": SMILES}).to_csv(csv, index=False)
    assert _run_main(["generate", "train", csv, "-o", tmp_path / "e", "--set", "train.ensemble=2"]) == 2
    assert "train.ensemble" in capsys.readouterr().err
    # every molecule is longer than 2 SELFIES tokens: nothing to train on, said before the run folder exists
    assert _run_main(["generate", "train", csv, "-o", tmp_path / "long", "--set", "max_len=2"]) == 2
    assert "max_len" in capsys.readouterr().err
    assert _run_main(["generate", "train", csv, "-o", tmp_path / "r", "--set", "network.name=vae"]) == 2
    assert "network.name" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("e", "long", "r"))


class _FakeQSAR:
    """What ``medlearn.load_run`` gives for a QSAR run: ``predict_values(smiles) -> (N, T)``."""

    task_name = "qsar"

    def predict_values(self, smiles: list[str]) -> np.ndarray:
        return np.array([[s.count("N") + s.count("n"), 0.0] for s in smiles], dtype=float)


def test_sample_filtered_by_a_qsar_run(trained, tmp_path, monkeypatch, capsys):
    _, run, _ = trained
    qsar_run = tmp_path / "qsar"
    real_load_run = medlearn.load_run
    monkeypatch.setattr(medlearn, "load_run", lambda d: _FakeQSAR() if Path(d) == qsar_run else real_load_run(d))
    out_csv = tmp_path / "f.csv"
    assert _run_main(["generate", "sample", run, "-n", "5", "-o", out_csv, "--qsar", qsar_run,
                      "--min-score", "0.3", "--focus", "1"]) == 0
    df = pd.read_csv(out_csv)
    assert len(df) > 0 and (df["score"] >= 0.3).all() and df["valid"].all()
    before = (run / "model.pt").read_bytes()
    assert medlearn.load_run(run).sample(5, seed=0) == medlearn.load_run(run).sample(5, seed=0)
    assert (run / "model.pt").read_bytes() == before  # focusing changed a copy, not the run
    assert _run_main(["generate", "sample", run, "-n", "5", "-o", out_csv, "--min-score", "1"]) == 2
    assert _run_main(["generate", "sample", run, "-n", "5", "-o", out_csv, "--qsar", qsar_run]) == 2
    capsys.readouterr()
    # a run of another task is not a QSAR model: one line, exit 2
    assert _run_main(["generate", "sample", run, "-n", "5", "-o", out_csv, "--qsar", run, "--min-score", "1"]) == 2
    assert "not a QSAR run" in capsys.readouterr().err


class _Crash(Callback):
    def on_train_epoch_start(self, trainer: object, module: object) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("simulated power cut")


def test_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    import medlearn.engine.trainer as trainer_module

    csv = tmp_path / "m.csv"
    pd.DataFrame({"smiles": SMILES}).to_csv(csv, index=False)
    args = ["generate", "train", csv, "-o", tmp_path / "r", "--quiet", *TINY, "--set", "train.max_epochs=4",
            "--set", "train.patience=null"]
    original = trainer_module.build_trainer
    monkeypatch.setattr(trainer_module, "build_trainer",
                        lambda *a, **k: original(*a, **{**k, "extra_callbacks": [*k["extra_callbacks"], _Crash()]}))
    with pytest.raises(RuntimeError, match="power cut"):
        _run_main(args)
    assert not (tmp_path / "r" / "metrics.json").exists() and (tmp_path / "r" / "checkpoints" / "last.ckpt").exists()
    monkeypatch.setattr(trainer_module, "build_trainer", original)
    assert _run_main([*args, "--resume"]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["training"]["epochs"] == 4
    epochs = pd.read_csv(tmp_path / "r" / "logs" / "metrics.csv")["epoch"].dropna().astype(int)
    assert sorted(set(epochs)) == [0, 1, 2, 3]  # rows of the first attempt kept, epochs 2-3 added
