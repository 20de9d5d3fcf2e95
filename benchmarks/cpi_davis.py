"""CPI on Davis (DeepDTA folds, setting 1): two-tower fingerprint x protein k-mer model vs published numbers.

    python benchmarks/cpi_davis.py [--dataset davis] [--max-minutes 20]

Train on the five DeepDTA training folds minus the last one, early-stop on that last fold, report on
the test fold: MSE, concordance index, r_m². Published (setting 1): DeepDTA Davis CI 0.878 / MSE
0.261, KIBA CI 0.863 / MSE 0.194; GraphDTA Davis CI 0.893 / MSE 0.229, KIBA CI 0.891 / MSE 0.139.
Issue goal: Davis CI >= 0.89 and MSE <= 0.25 trained on CPU in under 30 minutes.
Writes ``benchmarks/results/cpi_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import _common

PUBLISHED = {"davis": {"DeepDTA": (0.878, 0.261), "GraphDTA": (0.893, 0.229)},
             "kiba": {"DeepDTA": (0.863, 0.194), "GraphDTA": (0.891, 0.139)}}


def main() -> None:
    import torch

    from medlearn.chem.cpi.data import load_deepdta
    from medlearn.chem.cpi.metrics import cpi_metrics
    from medlearn.chem.cpi.model import CPIRegressor, drug_features, kmer_features

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="davis")
    ap.add_argument("--max-minutes", type=float, default=20.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0, c0 = time.time(), time.process_time()
    T = load_deepdta(_common.data_root() / "davis_kiba_dta" / args.dataset)
    Xd, Xp = drug_features(T.smiles), kmer_features(T.sequences)
    tr = np.concatenate(T.folds["train"][:-1])
    va = np.asarray(T.folds["train"][-1])
    te = np.asarray(T.folds["test"])
    m = CPIRegressor(max_epochs=200, patience=20, max_time_minutes=args.max_minutes)
    m.fit(Xd, Xp, T.drug_idx[tr], T.prot_idx[tr], T.y[tr], val=(T.drug_idx[va], T.prot_idx[va], T.y[va]))
    wall, cpu = time.time() - t0, time.process_time() - c0
    test = cpi_metrics(T.y[te], m.predict(T.drug_idx[te], T.prot_idx[te]))
    val = cpi_metrics(T.y[va], m.predict(T.drug_idx[va], T.prot_idx[va]))
    res = {"dataset": args.dataset, "test": test, "val": val, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "epochs": m.epochs_, "best_epoch": m.best_epoch_, "n_train": int(len(tr)), "n_val": int(len(va)),
           "published": PUBLISHED.get(args.dataset), "goal": "Davis CI >= 0.89, MSE <= 0.25, < 30 min CPU"}
    md = [f"# CPI: {args.dataset} (DeepDTA folds, setting 1)", "",
          "| model | test CI | test MSE | test r_m² | train wall min | CPU min |", "|---|---|---|---|---|---|",
          f"| medlearn two-tower (Morgan counts x protein k-mers) | {test['ci']:.3f} | {test['mse']:.3f} | "
          f"{test['rm2']:.3f} | {wall / 60:.1f} | {cpu / 60:.1f} |"]
    for name, (ci, mse) in PUBLISHED.get(args.dataset, {}).items():
        md.append(f"| {name} (published) | {ci} | {mse} | - | - | - |")
    md += ["", f"Goal (issue 4): CI >= 0.89 and MSE <= 0.25 on Davis in < 30 min on CPU. Early stopping on the "
           f"last training fold; best epoch {m.best_epoch_} of {m.epochs_}; 1 thread, shared machine."]
    _common.write_results(f"cpi_{args.dataset}", {**res, "environment": _common.environment()}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
