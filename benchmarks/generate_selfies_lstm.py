"""Molecule generation: SELFIES LSTM trained on a MoleculeNet set with default settings.

Trains a ``MoleculeGenerator`` (``medlearn generate train``; default plan: SELFIES 2-layer LSTM, <= 8 CPU
minutes, early stopping on held-out next-token loss) on Lipophilicity (4,200 ChEMBL molecules), samples
2,000 fresh molecules at temperature 1.0 (``evaluate`` against the training CSV, seed 1) and measures
validity, uniqueness, novelty (vs the training set; 95% bootstrap CIs over the samples) and internal
diversity. Targets (issue 4): >= 95% valid, >= 90% unique, >= 80% novel.

Published for comparison (different training sets, ChEMBL/ZINC, far longer training on GPUs):
GuacaMol SMILES LSTM (Brown et al. 2019) validity 0.959, uniqueness 1.000, novelty 0.912;
MOSES CharRNN (Polykovskiy et al. 2020) validity 0.975, uniqueness@10k 0.999, novelty 0.842.

    python benchmarks/generate_selfies_lstm.py [--dataset lipophilicity] [--model lstm|aae] [--samples 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_root, environment, write_results  # noqa: E402

DATASETS = {"lipophilicity": "lipophilicity/Lipophilicity.csv", "hiv": "hiv/HIV.csv",
            "esol": "esol/delaney-processed.csv"}


def _value(entry: Any) -> float:
    """A metric as a number (``{"value", "ci95"}`` entries, or the plain numbers of older result files)."""
    return entry["value"] if isinstance(entry, dict) else entry


def _cell(entry: Any) -> str:
    ci = entry.get("ci95") if isinstance(entry, dict) else None
    return f"{_value(entry):.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown(payload: dict) -> str:
    m = payload["metrics"]
    pm = {k: {"generated": v["generated"], "reference": v.get("reference", v.get("training"))}
          for k, v in m["property_means"].items()}
    what = {"lstm": "SELFIES LSTM", "gru": "SELFIES GRU",
            "aae": "fingerprint AAE (Kadurin et al. 2017) screening SELFIES-LSTM samples"}[payload.get("model", "lstm")]
    return (f"**Molecule generation** — {what} (default plan) trained on {payload['dataset']} "
            f"({m['training']['n_molecules']} molecules, {payload['train_seconds'] / 60:.1f} min on 2 shared "
            f"CPU threads, {m['training']['epochs']} epochs), {payload['n_samples']} samples at T=1.0"
            + (" (95% bootstrap CIs over the samples)" if isinstance(m["validity"], dict) else "") + "\n\n"
            "| metric | medlearn | target | GuacaMol SMILES LSTM | MOSES CharRNN |\n"
            "| --- | --- | --- | --- | --- |\n"
            f"| validity | {_cell(m['validity'])} | >= 0.95 | 0.959 | 0.975 |\n"
            f"| uniqueness | {_cell(m['uniqueness'])} | >= 0.90 | 1.000 | 0.999 (@10k) |\n"
            f"| novelty | {_cell(m['novelty'])} | >= 0.80 | 0.912 | 0.842 |\n"
            f"| internal diversity | {m['internal_diversity']:.3f} | — | — | — |\n"
            f"| mean QED (training {pm['qed']['reference']:.2f}) | {pm['qed']['generated']:.2f} | — | — | — |\n"
            f"| mean logP (training {pm['logp']['reference']:.2f}) | {pm['logp']['generated']:.2f} | — | — | — |\n"
            f"| mean MW (training {pm['mw']['reference']:.0f}) | {pm['mw']['generated']:.0f} | — | — | — |\n")


def main() -> None:
    import torch

    from medlearn.tasks.generate.model import MoleculeGenerator

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="lipophilicity", choices=sorted(DATASETS))
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--model", default="lstm", choices=["lstm", "gru", "aae"], help="network.name")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--markdown-only", action="store_true", help="Rewrite the .md from the existing .json.")
    args = ap.parse_args()
    name = f"generate_selfies_{args.model}_{args.dataset}"
    if args.markdown_only:
        import json

        from _common import RESULTS

        payload = json.loads((RESULTS / f"{name}.json").read_text())
        write_results(name, payload, markdown(payload))
        return
    torch.set_num_threads(2)
    csv = data_root() / DATASETS[args.dataset]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = MoleculeGenerator(overrides=[f"network.name={args.model}", *args.overrides]).fit(csv, Path(tmp) / "run")
        train_s = time.perf_counter() - t0
        # fresh samples (seed 1) scored against the training CSV's molecules: novelty vs the training set
        metrics = model.evaluate(csv, name="benchmark", n=args.samples, seed=1)
        metrics["training"] = model.metrics_["training"]
    payload = {"dataset": args.dataset, "model": args.model, "n_samples": args.samples,
               "train_seconds": round(train_s, 1), "overrides": args.overrides, "metrics": metrics,
               "environment": environment()}
    md = markdown(payload)
    write_results(name, payload, md)
    print(md)


if __name__ == "__main__":
    main()
