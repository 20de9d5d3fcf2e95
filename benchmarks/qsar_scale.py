"""QSAR scale and featurisation speed on HIV (41k molecules, shared scaffold split seed 0).

    python benchmarks/qsar_scale.py [--max-train-minutes 15]

1. Featurisation speed (cold cache): Morgan bits, Morgan counts, RDKit 2D descriptors, in mol/s,
   SMILES parsing included; then the cached re-read. Target: >= 2,000 mol/s (fingerprints).
2. Training on the scaffold split with the default ``auto`` model (features cached by step 1), the
   neural candidate capped in wall time so the whole fit stays under the budget. Target: < 15 min.
   Test ROC-AUC is compared with the RF/logistic anchors in ANCHORS.md (chemprop was not run on HIV).
Writes ``benchmarks/results/qsar_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import _common

SPLIT = Path(os.environ.get("MEDLEARN_DATA", _common.REPO.parent / "shared" / "data")).parent \
    / "benchmarks" / "qsar" / "splits" / "hiv_scaffold_seed0.json"


def main() -> None:
    import torch

    from medlearn.chem.api import QSARModel
    from medlearn.chem.data import load_smiles_csv
    from medlearn.chem.featurize import FeatureSpec, featurize
    from medlearn.chem.metrics import qsar_metrics
    from medlearn.chem.splits import read_split_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--max-train-minutes", type=float, default=15.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sp = json.loads(SPLIT.read_text())
    t0 = time.time()
    table = load_smiles_csv(_common.data_root() / sp["csv"], sp["smiles_column"], sp["targets"])
    load_s = time.time() - t0
    speed = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MEDLEARN_CACHE"] = cache
        for kind in ("morgan", "morgan_count", "rdkit2d"):
            t = time.time()
            featurize(table.smiles, FeatureSpec((kind,)))
            cold = time.time() - t
            t = time.time()
            featurize(table.smiles, FeatureSpec((kind,)))
            warm = time.time() - t
            speed[kind] = {"cold_s": round(cold, 2), "cold_mol_per_s": round(len(table) / cold),
                           "cached_s": round(warm, 3), "cached_mol_per_s": round(len(table) / max(warm, 1e-6))}
            print(kind, speed[kind], flush=True)
        parts = read_split_file(SPLIT, table)
        sm = np.array(table.smiles, dtype=object)
        tr, va, te = parts["train"], parts["val"], parts["test"]
        budget = args.max_train_minutes
        c, t = time.process_time(), time.time()
        m = QSARModel(model="auto", task_type="classification", seed=0, n_jobs=1, verbose=True,
                      max_time_minutes=budget / 4)
        m.fit(list(sm[tr]), table.y[tr], list(sm[va]), table.y[va])
        fit_wall, fit_cpu = time.time() - t, time.process_time() - c
        pred = m.predict_values(list(sm[te]))
    met = qsar_metrics("classification", table.y[te], pred)
    result = {"n_molecules": len(table), "load_parse_s": round(load_s, 1), "featurisation": speed,
              "train": {"n_train": int(len(tr)), "wall_s": round(fit_wall, 1), "cpu_s": round(fit_cpu, 1),
                        "budget_min": budget, "chosen": m.selection_["chosen"],
                        "candidates": {c.kind: c.val_score for c in m.candidates_}},
              "test_roc_auc": met["roc_auc"], "test_pr_auc": met["pr_auc"],
              "anchors": {"rf_ecfp4": 0.7475, "logreg_ecfp4": 0.7143, "chemprop_paper": 0.776,
                          "moleculenet_best": 0.792}}
    md = ["# QSAR scale: HIV (41k molecules), scaffold split seed 0", "",
          "| featuriser | cold mol/s | cached mol/s | target |", "|---|---|---|---|"]
    for k, v in speed.items():
        md.append(f"| {k} | {v['cold_mol_per_s']} | {v['cached_mol_per_s']} | "
                  f"{'>= 2000' if k != 'rdkit2d' else '-'} |")
    md += ["", "| training (features cached) | wall min | CPU min | target | test ROC-AUC | RF ECFP4 anchor |",
           "|---|---|---|---|---|---|",
           f"| auto ({'+'.join(m.selection_['chosen'])}) | {fit_wall / 60:.1f} | {fit_cpu / 60:.1f} | < 15 min | "
           f"{met['roc_auc']:.3f} | 0.747 |", "",
           "One thread for torch and scikit-learn; other jobs shared the 2 cores during the run."]
    _common.write_results("qsar_scale", {**result, "environment": _common.environment()}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
