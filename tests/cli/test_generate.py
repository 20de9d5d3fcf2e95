import json

import pandas as pd
import pytest

from medlearn.cli.main import main


def _run(args):
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.fixture()
def csv(tmp_path):
    s = []
    for n in range(1, 9):
        c = "C" * n
        s += [c, c + "O", c + "N", c + "Cl", "OC(=O)" + c, "c1ccccc1" + c, c + "C(=O)OC", "Oc1ccc(" + c + ")cc1"]
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": s, "y": [len(x) for x in s]}).to_csv(path, index=False)
    return path


def test_generate_train_and_sample(csv, tmp_path):
    run = tmp_path / "gen"
    assert _run(["generate", "train", csv, "-o", run, "--max-epochs", "2", "--n-samples", "20", "-q",
                 "--threads", "1"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["validity"] > 0.5 and 0 <= m["novelty"] <= 1
    assert (run / "report.html").exists() and (run / "samples.csv").exists()
    out = tmp_path / "new.csv"
    assert _run(["generate", "sample", run, "-n", "10", "-o", out, "-q"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 10 and {"smiles", "novel"} <= set(df.columns)
    assert _run(["generate", "train", csv, "-o", tmp_path / "x", "--model", "vae"]) == 2


def test_generate_aae(csv, tmp_path):
    run = tmp_path / "aae"
    assert _run(["generate", "train", csv, "-o", run, "--model", "aae", "--max-epochs", "3", "--n-samples", "10",
                 "--condition", "y", "-q"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["validity"] == 1.0 and "reconstruction_auc" in m
