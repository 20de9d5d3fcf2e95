"""QSAR on MoleculeNet sets: medlearn's default model vs chemprop v2 measured on the same shared splits.

    python benchmarks/qsar_moleculenet.py [--datasets esol,bbbp] [--seeds 0,1,2] [--model auto] [--cores 1]
                                          [--rerun]

For each dataset and seed, reads ``shared/benchmarks/qsar/splits/<ds>_<split>_seed<k>.json`` and trains a
``medlearn qsar`` run (``QSARModel(...).fit(csv, run_dir)`` with default settings, ``network.name`` =
``--model``) on ``train`` (``val`` only for early stopping and the choice among candidates; ``test`` is
scored once at the end), and records the test metric (RMSE or mean per-task ROC-AUC, as in ANCHORS.md,
with its 95% CI) and the CPU time of the whole run (featurisation with an empty cache, training,
evaluation, report; this process and its member workers). ``--cores 1`` (default) pins the process to one
core, so everything runs with 1 thread as chemprop's anchor runs used; with more, members train side by
side. Writes ``benchmarks/results/qsar_moleculenet.{json,md}``; partial results are kept after each run,
and ``--rerun`` trains the asked (dataset, seed) pairs again, replacing their earlier rows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import _common  # (sets OMP_WAIT_POLICY before torch)

DATASETS = ["esol", "freesolv", "lipophilicity", "bbbp", "tox21", "clintox", "sider"]
SPLITS_DIR = Path(os.environ.get("MEDLEARN_DATA", _common.REPO.parent / "shared" / "data")).parent \
    / "benchmarks" / "qsar"
NAME = "qsar_moleculenet"


def split_file(ds: str, seed: int) -> Path:
    kind = "scaffold" if ds in ("bbbp", "hiv") else "random"
    return SPLITS_DIR / "splits" / f"{ds}_{kind}_seed{seed}.json"


def cpu_seconds() -> float:
    """CPU time of this process and of its finished workers (members may train in spawned processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_one(ds: str, seed: int, model: str) -> dict:
    from medlearn.tasks.qsar.model import QSARModel

    sp_path = split_file(ds, seed)
    sp = json.loads(sp_path.read_text())
    c0, t0 = cpu_seconds(), time.time()
    with tempfile.TemporaryDirectory() as tmp:  # cold feature cache: featurisation is part of the cost
        os.environ["MEDLEARN_CACHE"] = str(Path(tmp) / "cache")
        m = QSARModel({"network.name": model}, seed=seed, smiles_column=sp["smiles_column"], targets=sp["targets"],
                      task_type=sp["task"], split=str(sp_path))
        m.fit(_common.data_root() / sp["csv"], Path(tmp) / "run")
    cpu, wall = cpu_seconds() - c0, time.time() - t0
    key = "roc_auc" if sp["task"] == "classification" else "rmse"
    test = m.metrics_["test"]
    training = m.metrics_["training"]
    return {"dataset": ds, "seed": seed, "split": sp["split"], "metric": key, "value": test[key]["value"],
            "ci95": test[key]["ci95"], "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "cores": len(os.sched_getaffinity(0)), "members_side_by_side": training.get("members_side_by_side"),
            "chosen": m.selection_["chosen"], "val_score": m.selection_.get("val_score"),
            "candidates": {c["kind"]: c["val_score"] for c in m.candidates_},
            "n_train": int(m.plan_.data.sizes["train"]), "n_val": int(m.plan_.data.sizes["val"]),
            "n_test": int(m.plan_.data.sizes["test"])}


def anchors() -> dict:
    a = json.loads((SPLITS_DIR / "anchors.json").read_text())
    out: dict = {}
    for r in a["runs"]:
        out.setdefault((r["dataset"], r["method"]), []).append(r)
    return {"runs": out, "published": a["published"]}


def summarise(rows: list[dict], model: str) -> tuple[dict, str]:
    anc = anchors()
    table = []
    wins = 0
    for ds in DATASETS:
        mine = [r for r in rows if r["dataset"] == ds]
        if not mine:
            continue
        cp = anc["runs"].get((ds, "chemprop"), [])
        rf = anc["runs"].get((ds, "rf"), [])
        metric = mine[0]["metric"]
        hib = metric == "roc_auc"
        v = float(np.mean([r["value"] for r in mine]))
        cpv = float(np.mean([r["value"] for r in cp])) if cp else float("nan")
        cpt = float(np.mean([r["wall_s"] for r in cp])) if cp else float("nan")
        mt = float(np.mean([r["cpu_s"] for r in mine]))
        better = (v > cpv) if hib else (v < cpv)
        within_time = mt <= cpt
        wins += int(better and within_time)
        table.append({"dataset": ds, "split": mine[0]["split"], "metric": metric, "n_seeds": len(mine),
                      "medlearn": v, "medlearn_std": float(np.std([r["value"] for r in mine], ddof=1))
                      if len(mine) > 1 else None,
                      "chemprop": cpv, "chemprop_n": len(cp), "rf_ecfp4": float(np.mean([r["value"] for r in rf]))
                      if rf else None, "chemprop_paper": anc["published"]["chemprop"].get(ds),
                      "medlearn_cpu_s": mt, "chemprop_s": cpt, "beats_chemprop": bool(better),
                      "within_chemprop_time": bool(within_time),
                      "chosen": sorted({"+".join(r["chosen"]) for r in mine})})
    summary = {"model": model, "datasets": table, "wins": wins, "n_datasets": len(table),
               "target": "beat chemprop on >= 5 of 7 (mean of 3 seeds) in no more CPU time"}
    lines = [f"# QSAR on MoleculeNet (shared splits): medlearn `{model}` vs chemprop v2", "",
             f"Wins (better mean and no more CPU time than chemprop's 1-thread run): **{wins} of {len(table)}** "
             "(target: 5 of 7).", "",
             "| dataset | split | metric | medlearn (mean ± sd, n) | chemprop v2 (same splits) | RF ECFP4 anchor | "
             "chemprop paper | medlearn CPU s/run | chemprop s/run | kept models |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        sd = f" ± {t['medlearn_std']:.3f}" if t["medlearn_std"] is not None else ""
        rf = f"{t['rf_ecfp4']:.3f}" if t["rf_ecfp4"] is not None else "-"
        mark = " ✓" if t["beats_chemprop"] and t["within_chemprop_time"] else ""
        lines.append(f"| {t['dataset']} | {t['split']} | {t['metric']} | {t['medlearn']:.3f}{sd} (n={t['n_seeds']})"
                     f"{mark} | {t['chemprop']:.3f} (n={t['chemprop_n']}) | {rf} | {t['chemprop_paper']} | "
                     f"{t['medlearn_cpu_s']:.0f} | {t['chemprop_s']:.0f} | {', '.join(t['chosen'])} |")
    lines += ["", "RMSE: lower is better; ROC-AUC: mean over tasks, higher is better. medlearn CPU time is the",
              "CPU time of a whole `qsar train` run (featurisation with a cold cache, training of every candidate,",
              "evaluation with CIs, report), with 1 thread; chemprop's is the wall time of its 1-thread run from",
              "ANCHORS.md (taken while other jobs shared the machine, so an upper bound). The model choice uses",
              "the validation rows only."]
    return summary, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--model", default="auto")
    ap.add_argument("--fresh", action="store_true", help="ignore partial results from an earlier run")
    ap.add_argument("--rerun", action="store_true", help="train the asked (dataset, seed) pairs again, replacing "
                                                         "their rows in the partial results")
    ap.add_argument("--cores", type=int, default=1, help="CPU cores this benchmark may use (1: chemprop's setting)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:max(1, args.cores)])
    partial = _common.RESULTS / f"{NAME}.partial.json"
    rows: list[dict] = [] if args.fresh or not partial.exists() else json.loads(partial.read_text())
    done = {(r["dataset"], r["seed"], r.get("model", "auto")) for r in rows}
    for ds in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            if (ds, seed, args.model) in done and not args.rerun:
                continue
            r = run_one(ds, seed, args.model)
            r["model"] = args.model
            rows = [x for x in rows if (x["dataset"], x["seed"], x.get("model", "auto")) != (ds, seed, args.model)]
            rows.append(r)
            print(json.dumps({k: r[k] for k in ("dataset", "seed", "value", "cpu_s", "wall_s", "chosen")}), flush=True)
            from medlearn.io import write_json

            write_json(partial, rows)
    rows = [r for r in rows if r.get("model", "auto") == args.model]
    summary, md = summarise(rows, args.model)
    _common.write_results(NAME, {"summary": summary, "runs": rows, "headline": headline(summary),
                                 "environment": _common.environment()}, md)
    print(md)


def headline(summary: dict) -> list[dict]:
    """README rows: ESOL and BBBP (the headline sets) and the win count over the seven."""
    rows = []
    for d in summary["datasets"]:
        if d["dataset"] not in ("esol", "bbbp"):
            continue
        rows.append({"task": "qsar", "benchmark": f"{d['dataset'].upper()} {d['split']} split, {d['metric']} "
                                                  f"(mean of {d['n_seeds']} seeds)",
                     "medlearn": f"{d['medlearn']:.3f} ± {d['medlearn_std']:.3f}, {d['medlearn_cpu_s']:.0f} s CPU",
                     "reference": f"chemprop v2 here {d['chemprop']:.3f}, {d['chemprop_s']:.0f} s",
                     "goal met": "yes" if d["beats_chemprop"] and d["within_chemprop_time"] else "no"})
    wins = sum(d["beats_chemprop"] and d["within_chemprop_time"] for d in summary["datasets"])
    rows.append({"task": "qsar", "benchmark": f"{len(summary['datasets'])} MoleculeNet sets, shared splits",
                 "medlearn": f"better than chemprop v2 on {wins} of {len(summary['datasets'])}, in less CPU time",
                 "reference": "goal: 5 of 7", "goal met": "yes" if wins >= 5 else "no"})
    return rows


if __name__ == "__main__":
    main()
