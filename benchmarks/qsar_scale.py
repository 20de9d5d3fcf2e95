"""QSAR scale and featurisation speed on HIV (41k molecules, shared scaffold split seed 0).

    python benchmarks/qsar_scale.py [--max-train-minutes 15] [--cores 1]

1. Featurisation speed (cold cache): Morgan bits, Morgan counts, RDKit 2D descriptors, in mol/s,
   SMILES parsing included; then the cached re-read. Target: >= 2,000 mol/s (fingerprints).
2. A ``medlearn qsar`` run on the scaffold split with the default ``auto`` model (features cached by
   step 1), ``train.max_minutes`` set so the neural candidate gets a quarter of the budget (members share
   ``train.max_minutes`` by rounds: 2 candidates one after another on one core) and the whole fit stays
   under it. Target: < 15 min. Test ROC-AUC is compared with the RF/logistic anchors in ANCHORS.md
   (chemprop was not run on HIV).
Writes ``benchmarks/results/qsar_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import _common

SPLIT = Path(os.environ.get("MEDLEARN_DATA", _common.REPO.parent / "shared" / "data")).parent \
    / "benchmarks" / "qsar" / "splits" / "hiv_scaffold_seed0.json"


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished workers."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    from medlearn.chem.data import load_smiles_csv
    from medlearn.chem.featurize import FeatureSpec, featurize
    from medlearn.tasks.qsar.model import QSARModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--max-train-minutes", type=float, default=15.0)
    ap.add_argument("--cores", type=int, default=1, help="CPU cores this benchmark may use (1: one thread)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:max(1, args.cores)])
    sp = json.loads(SPLIT.read_text())
    csv = _common.data_root() / sp["csv"]
    t0 = time.time()
    table = load_smiles_csv(csv, sp["smiles_column"], sp["targets"])
    load_s = time.time() - t0
    speed = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDLEARN_CACHE"] = str(Path(tmp) / "cache")
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
        budget = args.max_train_minutes
        c, t = _cpu_seconds(), time.time()
        # the DNN's cap was budget / 4 per neural member: members share train.max_minutes by rounds (2 here)
        m = QSARModel({"train.max_minutes": budget / 2}, seed=0, smiles_column=sp["smiles_column"],
                      targets=sp["targets"], task_type="classification", split=str(SPLIT))
        m.fit(csv, Path(tmp) / "run")
        fit_wall, fit_cpu = time.time() - t, _cpu_seconds() - c
    test = m.metrics_["test"]
    result = {"n_molecules": len(table), "load_parse_s": round(load_s, 1), "featurisation": speed,
              "train": {"n_train": int(m.plan_.data.sizes["train"]), "wall_s": round(fit_wall, 1),
                        "cpu_s": round(fit_cpu, 1), "training_s": m.metrics_["training"]["seconds"],
                        "budget_min": budget, "chosen": m.selection_["chosen"],
                        "candidates": {c["kind"]: c["val_score"] for c in m.candidates_}},
              "test_roc_auc": test["roc_auc"]["value"], "test_roc_auc_ci95": test["roc_auc"]["ci95"],
              "test_pr_auc": test["pr_auc"]["value"],
              "anchors": {"rf_ecfp4": 0.7475, "logreg_ecfp4": 0.7143, "chemprop_paper": 0.776,
                          "moleculenet_best": 0.792}}
    met = {"roc_auc": test["roc_auc"]["value"]}
    md = ["# QSAR scale: HIV (41k molecules), scaffold split seed 0", "",
          "| featuriser | cold mol/s | cached mol/s | target |", "|---|---|---|---|"]
    for k, v in speed.items():
        md.append(f"| {k} | {v['cold_mol_per_s']} | {v['cached_mol_per_s']} | "
                  f"{'>= 2000' if k != 'rdkit2d' else '-'} |")
    md += ["", "| training (features cached) | wall min | CPU min | target | test ROC-AUC | RF ECFP4 anchor |",
           "|---|---|---|---|---|---|",
           f"| auto ({'+'.join(m.selection_['chosen'])}) | {fit_wall / 60:.1f} | {fit_cpu / 60:.1f} | < 15 min | "
           f"{met['roc_auc']:.3f} | 0.747 |", "",
           "A whole `qsar train` run (evaluation and report included), one core unless --cores; other jobs shared",
           "the 2 cores during the run."]
    _common.write_results("qsar_scale", {**result, "environment": _common.environment()}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
