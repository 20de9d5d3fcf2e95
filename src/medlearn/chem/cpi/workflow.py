"""Run-directory workflows behind ``medlearn cpi train|predict``.

``train`` reads either a DeepDTA folder (``--format deepdta``; DeepDTA folds: train on all training
folds but the last, early-stop on the last, report on the test fold) or a pair CSV of (SMILES,
sequence, value) (random 80/10/10 split), and writes ``plan.json``, ``config.yaml``, ``model.pt``
(model + protein encoder + fingerprint settings), ``report.html``, ``versions.json`` and, last,
``metrics.json`` (MSE, CI, r_m² per split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.chem.cpi.data import PairTable, load_deepdta, load_pair_csv
from medlearn.chem.cpi.metrics import cpi_metrics
from medlearn.chem.cpi.model import CPIRegressor, ProteinKmerEncoder, drug_features
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.io import atomic_path, write_json


def _load(data: str | Path, fmt: str, smiles: str, sequence: str, target: str) -> PairTable:
    if fmt == "auto":
        fmt = "deepdta" if Path(data).is_dir() else "csv"
    if fmt == "deepdta":
        return load_deepdta(data)
    if fmt == "csv":
        return load_pair_csv(data, smiles, sequence, target)
    raise InputError("--format", f"unknown format '{fmt}'", "use deepdta, csv or auto")


def train_cpi(data: str | Path, out: str | Path, fmt: str = "auto", smiles: str = "smiles",
              sequence: str = "sequence", target: str = "y", max_epochs: int = 200,
              max_time_minutes: float | None = None, seed: int = 0, force: bool = False, resume: bool = False,
              quiet: bool = False) -> dict:
    import torch

    T = _load(data, fmt, smiles, sequence, target)
    run = RunDirectory(Path(out))
    run.prepare(force=force, resume=resume)
    n = len(T.y)
    if T.folds is not None:
        parts = {"train": np.concatenate(T.folds["train"][:-1]).astype(int),
                 "val": np.asarray(T.folds["train"][-1], dtype=int), "test": np.asarray(T.folds["test"], dtype=int)}
        split = "deepdta folds (setting 1)"
    else:
        from medlearn.chem.splits import random_split

        parts = random_split(n, seed)
        split = "random 80/10/10"
    if len(parts["train"]) < 2:
        raise InputError(data, "too few pairs to train", "give at least a few dozen (compound, protein, value) rows")
    plan = {"data": str(data), "format": fmt, "split": split, "n_pairs": n, "n_compounds": len(T.smiles),
            "n_proteins": len(T.sequences), "sizes": {k: int(len(v)) for k, v in parts.items()},
            "model": "two-tower: Morgan counts (r=2, 1024) x protein 1-3-mer PCA", "max_epochs": max_epochs,
            "max_time_minutes": max_time_minutes, "seed": seed}
    write_json(run.plan_file, plan)
    run.write_config({"data": str(data), "format": fmt, "smiles": smiles, "sequence": sequence, "target": target,
                      "max_epochs": max_epochs, "max_time_minutes": max_time_minutes, "seed": seed})
    write_json(run.splits_file, {k: v.tolist() for k, v in parts.items()})
    enc = ProteinKmerEncoder().fit(T.sequences)
    Xd, Xp = drug_features(T.smiles), enc.transform(T.sequences)
    tr, va = parts["train"], parts["val"]
    model = CPIRegressor(max_epochs=max_epochs, seed=seed, max_time_minutes=max_time_minutes)
    model.fit(Xd, Xp, T.drug_idx[tr], T.prot_idx[tr], T.y[tr],
              val=(T.drug_idx[va], T.prot_idx[va], T.y[va]) if len(va) else None)
    with atomic_path(run.model_file) as tmp:
        torch.save({"format": "medlearn.cpi/1", "model": model, "protein_encoder": enc, "plan": plan}, tmp)
    metrics = {k: cpi_metrics(T.y[v], model.predict(T.drug_idx[v], T.prot_idx[v]))
               for k, v in parts.items() if len(v) > 1}
    metrics["training"] = {"epochs": model.epochs_, "best_epoch": model.best_epoch_}
    _report(run, plan, metrics, T, parts, model)
    run.write_versions(seed)
    write_json(run.metrics_file, metrics)
    if not quiet and "test" in metrics:
        t = metrics["test"]
        print(f"test CI {t['ci']:.3f}, MSE {t['mse']:.3f}, r_m2 {t['rm2']:.3f} (run: {run.path})")
    return metrics


def _report(run, plan, metrics, T, parts, model) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medlearn.evaluation.report import Report

    rep = Report(f"CPI: {Path(plan['data']).name}", plan["model"])
    rep.add_table([{"field": k, "value": str(v)} for k, v in plan.items()], caption="plan")
    rep.add_table([{"split": k, **v} for k, v in metrics.items() if k in parts], caption="metrics")
    key = "test" if "test" in parts else "val"
    idx = parts[key]
    p = model.predict(T.drug_idx[idx], T.prot_idx[idx])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(T.y[idx], p, s=4, alpha=0.4)
    lo, hi = float(min(T.y[idx].min(), p.min())), float(max(T.y[idx].max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("measured")
    ax.set_ylabel("predicted")
    rep.add_figure(fig, "parity", caption=f"{key}: predicted vs measured affinity")
    rep.write(run.report_file)


def predict_cpi(run_path: str | Path, data: str | Path, out: str | Path, smiles: str = "smiles",
                sequence: str = "sequence", quiet: bool = False):
    """Affinity for each (SMILES, sequence) row of a CSV -> ``out`` with a ``predicted`` column."""
    import torch

    from medlearn.chem.data import parse_smiles, read_csv

    run = RunDirectory(Path(run_path)).require_finished()
    blob = torch.load(run.model_file, weights_only=False, map_location="cpu")
    if not isinstance(blob, dict) or blob.get("format") != "medlearn.cpi/1":
        raise InputError(run.model_file, "not a medlearn CPI model", "point to a run made by medlearn cpi train")
    df = read_csv(data)
    for c in (smiles, sequence):
        if c not in df.columns:
            raise InputError(data, f"no column '{c}'", f"columns are: {', '.join(map(str, df.columns))}")
    sm = df[smiles].astype(str).str.strip().tolist()
    ok = np.array([parse_smiles(s) is not None for s in sm])
    pred = np.full(len(df), np.nan)
    if ok.any():
        xd = drug_features([s for s, k in zip(sm, ok, strict=True) if k])
        xp = blob["protein_encoder"].transform(df[sequence].astype(str)[ok].tolist())
        pred[ok] = blob["model"].predict_features(xd, xp)
    df["predicted"] = pred
    with atomic_path(out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    if not quiet:
        print(f"wrote {int(ok.sum())} predictions to {out}" + (f" ({int((~ok).sum())} invalid SMILES)"
                                                              if (~ok).any() else ""))
    return df
