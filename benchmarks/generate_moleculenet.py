"""Molecule generation: SELFIES LSTM trained on a MoleculeNet set; validity, uniqueness, novelty, diversity.

    python benchmarks/generate_moleculenet.py [--dataset lipophilicity] [--max-minutes 10] [--n 2000]

Issue goal: >= 95% valid, >= 90% unique, >= 80% novel. Writes
``benchmarks/results/generate_<dataset>.{json,md}`` (and the property histogram PNG next to it).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import _common

CSV = {"lipophilicity": "lipophilicity/Lipophilicity.csv", "esol": "esol/delaney-processed.csv",
       "bbbp": "bbbp/BBBP.csv", "hiv": "hiv/HIV.csv"}


def main() -> None:
    import torch

    from medlearn.chem.data import load_smiles_csv
    from medlearn.chem.generate.lstm import MoleculeLSTM
    from medlearn.chem.generate.metrics import generation_metrics, property_figure

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="lipophilicity")
    ap.add_argument("--max-minutes", type=float, default=10.0)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = load_smiles_csv(_common.data_root() / CSV[args.dataset], "smiles", [], require_targets=False)
    t0, c0 = time.time(), time.process_time()
    m = MoleculeLSTM(alphabet="selfies", max_epochs=100, patience=5, batch_size=64,
                     max_time_minutes=args.max_minutes).fit(table.smiles)
    fit_wall, fit_cpu = time.time() - t0, time.process_time() - c0
    samples = m.sample(args.n, seed=1)
    met = generation_metrics(samples, table.smiles)
    fig = property_figure(samples, table.smiles)
    _common.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(_common.RESULTS / f"generate_{args.dataset}_properties.png", dpi=100)
    res = {"dataset": args.dataset, "n_train": len(table), "metrics": met, "fit_wall_s": round(fit_wall, 1),
           "fit_cpu_s": round(fit_cpu, 1), "epochs": m.epochs_, "val_nll": m.val_nll_,
           "examples": pd.Series(samples[:10]).tolist()}
    md = [f"# Generation: SELFIES LSTM on {args.dataset} ({len(table)} molecules)", "",
          "| metric | value | goal |", "|---|---|---|",
          f"| validity | {met['validity']:.3f} | >= 0.95 |", f"| uniqueness | {met['uniqueness']:.3f} | >= 0.90 |",
          f"| novelty | {met['novelty']:.3f} | >= 0.80 |",
          f"| internal diversity | {met['internal_diversity']:.3f} | - |",
          f"| QED mean (train) | {met['qed_mean']:.3f} ({met['qed_train_mean']:.3f}) | - |",
          f"| logP mean (train) | {met['logp_mean']:.2f} ({met['logp_train_mean']:.2f}) | - |",
          f"| MW mean (train) | {met['mw_mean']:.0f} ({met['mw_train_mean']:.0f}) | - |", "",
          f"{args.n} samples; training {fit_wall / 60:.1f} min wall ({m.epochs_} epochs, capped at "
          f"{args.max_minutes} min), 1 thread, shared machine."]
    _common.write_results(f"generate_{args.dataset}", {**res, "environment": _common.environment()}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
