"""Compound-protein affinity on Davis (or KIBA), DeepDTA folds (setting 1), medlearn.cpi default plan, CPU.

Trains ``medlearn.cpi`` (``train_cpi`` on the davis_kiba_dta folder) with the default plan: training
on four DeepDTA training folds, early stopping and checkpoint choice on the fifth
(``train.val_fold``), a wall-time cap of ``train.max_time_minutes``; the test fold is predicted
once at the end. Target (issue 4): Davis CI >= 0.89 and MSE <= 0.25 on the test fold, trained on
CPU in < 30 min. Published on the same folds: DeepDTA CI 0.878 / MSE 0.261 (KIBA 0.863 / 0.194);
GraphDTA CI 0.893 / MSE 0.229 (KIBA 0.891 / 0.139).

    python benchmarks/cpi_deepdta_folds.py [--dataset davis] [--set train.max_time_minutes=25]

Writes ``benchmarks/results/cpi_deepdta_folds_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, data_root, environment, write_results  # noqa: E402

PUBLISHED = {"davis": {"DeepDTA": (0.878, 0.261), "GraphDTA": (0.893, 0.229)},
             "kiba": {"DeepDTA": (0.863, 0.194), "GraphDTA": (0.891, 0.139)}}


def markdown(payload: dict) -> str:
    ds = payload["dataset"]
    m = payload["metrics"]
    te, va = m["test"], m["val"]
    pub = PUBLISHED[ds]
    target = "CI >= 0.89, MSE <= 0.25, < 30 min CPU" if ds == "davis" else "—"
    plan = payload["plan"]["net"]
    capped = payload["wall_seconds"] / 60 >= payload["plan"]["train"]["max_time_minutes"]
    stop = "stopped by the time cap" if capped else "early stopping, patience 20"
    return (f"**Compound-protein affinity, {ds.upper()}** (DeepDTA folds, setting 1; medlearn.cpi default plan: "
            f"{plan['compound']} compound branch, {plan['protein']} protein branch; "
            f"{m['history']['epochs']} epochs ({stop}), {payload['wall_seconds'] / 60:.1f} min "
            f"wall on 2 shared CPU threads; model chosen on validation fold {payload['plan']['train']['val_fold']})\n\n"
            "| model | test CI | test MSE | test r_m^2 | note |\n| --- | --- | --- | --- | --- |\n"
            f"| medlearn (measured) | {te['ci']:.3f} | {te['mse']:.3f} | {te['rm2']:.3f} | "
            f"val CI {va['ci']:.3f} / MSE {va['mse']:.3f} |\n"
            f"| target | {target} | | | |\n"
            f"| DeepDTA (published) | {pub['DeepDTA'][0]} | {pub['DeepDTA'][1]} | | |\n"
            f"| GraphDTA (published) | {pub['GraphDTA'][0]} | {pub['GraphDTA'][1]} | | |\n")


def main() -> None:
    import torch

    from medlearn.cpi.train import CPITrainOptions, train_cpi

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="davis", choices=sorted(PUBLISHED))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--markdown-only", action="store_true", help="Rewrite the .md from the existing .json.")
    args = ap.parse_args()
    name = f"cpi_deepdta_folds_{args.dataset}"
    if args.markdown_only:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
        write_results(name, payload, markdown(payload))
        return
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        metrics = train_cpi(CPITrainOptions(str(data_root() / "davis_kiba_dta"), str(run), args.dataset,
                                            overrides=args.overrides, progress=False))
        wall = time.perf_counter() - t0
        plan = json.loads((run / "plan.json").read_text())
    payload = {"dataset": args.dataset, "overrides": args.overrides, "wall_seconds": round(wall, 1),
               "plan": plan, "metrics": metrics, "environment": environment()}
    write_results(name, payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
