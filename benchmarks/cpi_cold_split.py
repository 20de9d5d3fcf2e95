"""Compound-protein affinity on Davis with cold splits: unseen proteins, unseen compounds, CPU.

DeepDTA's setting 1 (``cpi_deepdta_folds.py``) splits random pairs, so every test protein and compound
was seen in training; users of a new kinase or a new compound ask something harder. This trains the cpi
task's default plan with ``data.split=cold_protein`` and ``data.split=cold_drug`` (whole proteins /
compounds held out, 10% of the pairs each for validation and test, seed 0) and scores the test pairs
side by side with the baseline a cold split invites: each test pair predicted by the mean training
affinity of the part that *was* seen (its compound for cold_protein, its protein for cold_drug). CIs
resample the held-out proteins / compounds (pairs of one protein share its error), none below 10.
No published number is quoted: cold-split protocols differ from paper to paper (which fraction, which
seed, whether identical sequences are merged), so only what this run measured is compared.

    python benchmarks/cpi_cold_split.py [--splits cold_protein cold_drug]

Writes ``benchmarks/results/cpi_cold_split_davis.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ci_footnote, data_root, environment, value_text, write_results  # noqa: E402

SEEN = {"cold_protein": ("compound", "drug"), "cold_drug": ("protein", "protein")}


def seen_mean_baseline(table: Any, split: str, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Each test pair's prediction: the mean training affinity of its seen compound (cold_protein) or
    protein (cold_drug); the training mean where that one has no training pair."""
    key = getattr(table, SEEN[split][1])
    sums = np.bincount(key[train], weights=table.y[train], minlength=key.max() + 1)
    counts = np.bincount(key[train], minlength=key.max() + 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), table.y[train].mean())
    return means[key[test]]


def run_split(split: str, work: Path, overrides: list[str]) -> dict[str, Any]:
    from medlearn.data.splits import Splits
    from medlearn.evaluation.affinity import affinity_metrics_ci
    from medlearn.tasks.cpi.data import cold_groups, load_affinity_matrix
    from medlearn.tasks.cpi.model import AffinityModel
    from medlearn.tasks.cpi.task import TASK

    root = data_root() / "davis_kiba_dta"
    run = work / split
    started = time.perf_counter()
    model = AffinityModel(overrides=[f"data.split={split}", *overrides], seed=0, dataset="davis")
    metrics = model.fit(root, run).metrics_
    wall = time.perf_counter() - started
    table = load_affinity_matrix(root, "davis")
    splits = Splits.load(run / "splits.json", TASK.item_ids(table), TASK.split_unit)
    train, test = splits.indices("train"), splits.indices("test")
    groups = cold_groups(table, split)
    baseline = affinity_metrics_ci(table.y[test], seen_mean_baseline(table, split, train, test), 1000, 0,
                                   groups[test])
    return {"split": split, "wall_seconds": round(wall, 1), "metrics": metrics, "baseline": baseline,
            "pairs": splits.sizes(), "held_out": {p: int(len(np.unique(groups[splits.indices(p)])))
                                                  for p in ("train", "val", "test")},
            "plan": json.loads((run / "plan.json").read_text())}


def markdown(payload: dict[str, Any]) -> str:
    from medlearn.tasks.cpi.data import COLD_UNITS

    lines = ["### Compound-protein affinity, DAVIS, cold splits (`benchmarks/cpi_cold_split.py`)", "",
             "The cpi default plan with whole proteins (cold_protein) or compounds (cold_drug) held out: 10% of "
             "the pairs validate, 10% test, seed 0, instead of the DeepDTA folds. Baseline: each test pair "
             "predicted by the mean training affinity of its seen side. 95% CIs resample the held-out proteins "
             "/ compounds (none below 10). "
             f"{payload['environment']['cpu_count']}-core CPU, {payload['environment']['date']}.", "",
             "| split | held out (train / val / test) | model | test CI [95% CI] | test MSE [95% CI] | "
             "test r_m^2 | wall min |", "|---|---|---|---|---|---|---|"]
    for part in payload["runs"]:
        te, base, held = part["metrics"]["test"], part["baseline"], part["held_out"]
        count = f"{held['train']} / {held['val']} / {held['test']} {COLD_UNITS[part['split']]}"
        seen = SEEN[part["split"]][0]
        lines.append(f"| {part['split']} | {count} | medlearn | {value_text(te['ci'])} | {value_text(te['mse'])} | "
                     f"{value_text(te['rm2'])} | {part['wall_seconds'] / 60:.1f} |")
        lines.append(f"| {part['split']} | | mean of the test pair's {seen} in training | {value_text(base['ci'])} | "
                     f"{value_text(base['mse'])} | {value_text(base['rm2'])} | |")
    for part in payload["runs"]:
        unit = f"held-out {COLD_UNITS[part['split']]} ({part['split']})"
        if note := ci_footnote(part["held_out"]["test"], unit, then=""):
            lines += ["", note]
    random = payload.get("random_split")
    if random:
        lines += ["", f"For comparison, the random-pair split (DeepDTA setting 1, `cpi_deepdta_folds_davis`): test CI "
                  f"{random['ci']:.3f}, MSE {random['mse']:.3f}."]
    return "\n".join(lines)


def headline(payload: dict[str, Any]) -> list[dict[str, str]]:
    from medlearn.tasks.cpi.data import COLD_UNITS

    rows = []
    for part in payload["runs"]:
        te, base = part["metrics"]["test"], part["baseline"]
        rows.append({"task": "cpi", "benchmark": f"DAVIS {part['split'].replace('_', '-')} test (unseen "
                     f"{COLD_UNITS[part['split']]})",
                     "medlearn": f"CI {value_text(te['ci'])}, MSE {value_text(te['mse'])}",
                     "reference": f"{SEEN[part['split']][0]}-mean baseline CI {value_text(base['ci'])}, "
                                  f"MSE {value_text(base['mse'])}", "goal met": "—"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", nargs="+", default=["cold_protein", "cold_drug"], choices=sorted(SEEN))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="exploration only (a _partial result)")
    ap.add_argument("--render", type=Path, default=None, help="rebuild the markdown of a results JSON (nothing runs)")
    args = ap.parse_args()
    if args.render:
        done = json.loads(args.render.read_text())
        write_results(args.render.stem, done, markdown(done))
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_split(s, Path(tmp), args.overrides) for s in args.splits]
    payload: dict[str, Any] = {"dataset": "davis", "runs": runs, "load_average_1min_at_start": round(load, 2),
                               "overrides": args.overrides, "environment": environment()}
    random = RESULTS / "cpi_deepdta_folds_davis.json"
    if random.exists():
        te = json.loads(random.read_text())["metrics"]["test"]
        payload["random_split"] = {"ci": te["ci"]["value"], "mse": te["mse"]["value"]}
    payload["headline"] = headline(payload)
    name = "cpi_cold_split_davis" + ("_partial" if args.overrides or len(args.splits) < len(SEEN) else "")
    write_results(name, json.loads(json.dumps(payload, default=str)), markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
