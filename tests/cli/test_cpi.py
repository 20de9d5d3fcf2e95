import json

import numpy as np
import pandas as pd

from medlearn.cli.main import main

DRUGS = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "Clc1ccccc1", "OCC(O)CO", "CCCCCCCC", "c1ccncc1"]
PROTS = ["MKKFFDSRREQGGSGL", "ACDEFGHIKLMNPQRS", "MMMMKKKKLLLLAAAA", "GGGGSSSSTTTTPPPP", "WYWYWYHHHHRRRRDD"]


def _run(args):
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code
    return 0


def test_cpi_train_predict_csv(tmp_path, capsys):
    rows = [{"smiles": d, "sequence": p, "y": 5 + i * 0.3 + j * 0.5} for i, d in enumerate(DRUGS)
            for j, p in enumerate(PROTS)]
    csv = tmp_path / "pairs.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    run = tmp_path / "run"
    assert _run(["cpi", "train", csv, "-o", run, "--max-epochs", "5", "-q", "--threads", "1"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert {"train", "val", "test"} <= set(m) and m["train"]["mse"] >= 0 and 0 <= m["test"]["ci"] <= 1
    assert (run / "report.html").exists() and (run / "model.pt").exists()
    new = tmp_path / "new.csv"
    pd.DataFrame({"smiles": ["CCO", "bad_smiles"], "sequence": ["MKKFFDSRREQGGSGL", "ACDE"]}).to_csv(new, index=False)
    out = tmp_path / "pred.csv"
    assert _run(["cpi", "predict", run, new, "-o", out, "-q"]) == 0
    df = pd.read_csv(out)
    assert np.isfinite(df.loc[0, "predicted"]) and np.isnan(df.loc[1, "predicted"])
    capsys.readouterr()
    assert _run(["cpi", "train", csv, "-o", tmp_path / "r2", "--target", "pKd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pairs.csv" in err[0] and "pKd" in err[0]
