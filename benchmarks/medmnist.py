"""MedMNIST quality benchmark: medlearn's defaults on BreastMNIST and PneumoniaMNIST.

Default plan, no hand tuning; selection on the official val split only; test predicted once.
Compared with MedMNIST v2's published ResNet-18 (28) and best rows and with the reference run
measured on this machine (../shared/benchmarks/imaging/ANCHORS.md).

    python benchmarks/medmnist.py [--datasets breast pneumonia] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from _common import RESULTS, data_root, environment, load_average, write_results

DATASETS = {
    "breast": ("medmnist_breast/breastmnist.npz", {"auc": 0.92, "accuracy": 0.87},
               {"resnet18_28": (0.901, 0.863), "best": (0.919, 0.861), "anchor_here": (0.8814, 0.8654)}),
    "pneumonia": ("medmnist_pneumonia/pneumoniamnist_reduced_train.npz", {"auc": 0.96},
                  {"resnet18_28": (0.944, 0.854), "best": (0.991, 0.946), "anchor_here": (0.9600, 0.7901)}),
}
TIME_LIMIT_S = 600


def run(name: str, seed: int) -> dict:
    from medlearn.engine.workflow import train
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest

    rel, targets, published = DATASETS[name]
    out = tempfile.mkdtemp(prefix=f"medlearn-bench-{name}-")
    load_before = load_average()
    started = time.perf_counter()
    request = TrainRequest("classify", str(data_root() / rel), out, seed=seed, progress=False)
    metrics = train(get_task("classify"), request, echo=lambda *a, **k: None)
    wall = time.perf_counter() - started
    test = metrics["test"]
    row = {
        "dataset": name, "seed": seed, "run_dir": out,
        "test_auc": test["auc"]["value"], "test_auc_ci95": test["auc"]["ci95"],
        "test_acc": test["accuracy"]["value"], "test_acc_ci95": test["accuracy"]["ci95"],
        "val_auc": metrics["val"]["auc"]["value"],
        "train_seconds": metrics["training"]["seconds"], "wall_seconds": round(wall, 1),
        "epochs_run": sum(m["epochs"] for m in metrics["training"]["per_member"]), "targets": targets,
        "published": published,
        "load_average_1min_before": load_before, "load_average_1min_after": load_average(),
    }
    row["meets_targets"] = (all(row[f"test_{k if k != 'accuracy' else 'acc'}"] >= v for k, v in targets.items())
                            and row["train_seconds"] <= TIME_LIMIT_S)
    print(row, flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["### Image classification (MedMNIST, official test split, default plan)", "",
             "| dataset | test AUC [95% CI] | test ACC [95% CI] | train time | target | ResNet-18 (28) published | "
             "best published | reference run here | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["published"]
        target = ", ".join(f"{k} >= {v}" for k, v in r["targets"].items()) + f", <= {TIME_LIMIT_S // 60} min"
        lines.append(
            f"| {r['dataset']} (seed {r['seed']}) | {r['test_auc']:.3f} [{r['test_auc_ci95'][0]:.3f}, "
            f"{r['test_auc_ci95'][1]:.3f}] | {r['test_acc']:.3f} [{r['test_acc_ci95'][0]:.3f}, "
            f"{r['test_acc_ci95'][1]:.3f}] | {r['train_seconds'] / 60:.1f} min ({r['epochs_run']} ep) | {target} | "
            f"{p['resnet18_28'][0]:.3f} / {p['resnet18_28'][1]:.3f} | {p['best'][0]:.3f} / {p['best'][1]:.3f} | "
            f"{p['anchor_here'][0]:.3f} / {p['anchor_here'][1]:.3f} | {'yes' if r['meets_targets'] else 'no'} |")
    lines.append("")
    lines.append("Train time is measured on this 2-core machine; the 1-min load average during each run is in "
                 "`results/medmnist.json` (other jobs shared the cores).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", action="store_true", help="Only rewrite the tables from results/medmnist.json.")
    args = parser.parse_args()
    rows = [] if args.render else [run(name, args.seed) for name in args.datasets]
    previous = RESULTS / "medmnist.json"
    if previous.exists():  # keep the rows of datasets not re-run this time
        done = {(r["dataset"], r["seed"]) for r in rows}
        kept = [r for r in json.loads(previous.read_text())["rows"] if (r["dataset"], r["seed"]) not in done]
        rows = sorted(kept + rows, key=lambda r: (list(DATASETS).index(r["dataset"]), r["seed"]))
    write_results("medmnist", {"rows": rows, "headline": headline(rows), "environment": environment()}, markdown(rows))


def headline(rows: list[dict]) -> list[dict]:
    """README rows: per dataset, the lowest seed's run (the mean over the seeds run when there are several)."""
    out = []
    for name in DATASETS:
        runs = [r for r in rows if r["dataset"] == name]
        if not runs:
            continue
        auc, acc = np.mean([r["test_auc"] for r in runs]), np.mean([r["test_acc"] for r in runs])
        seeds = ", ".join(str(r["seed"]) for r in runs)
        p = runs[0]["published"]
        minutes = np.mean([r["train_seconds"] for r in runs]) / 60
        out.append({"task": "classify", "benchmark": f"{name.capitalize()}MNIST test (seeds {seeds})",
                    "medlearn": f"AUC {auc:.3f} / ACC {acc:.3f}, {minutes:.1f} min",
                    "reference": f"ResNet-18 (28) {p['resnet18_28'][0]:.3f} / {p['resnet18_28'][1]:.3f}",
                    "goal met": f"{sum(r['meets_targets'] for r in runs)} of {len(runs)}"})
    return out


if __name__ == "__main__":
    main()
