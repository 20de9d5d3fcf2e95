"""Run-directory workflows behind ``medlearn generate train|sample``.

``train`` fits a :class:`~medlearn.chem.generate.lstm.MoleculeLSTM` (``lstm``) or a
:class:`~medlearn.chem.generate.aae.FingerprintAAEGenerator` (``aae``) on a SMILES CSV and writes
``plan.json``, ``config.yaml``, ``model.pt``, ``samples.csv`` (a first batch), ``report.html`` with
the property distributions, ``versions.json`` and, last, ``metrics.json`` (validity, uniqueness,
novelty, internal diversity, property distances). ``sample`` draws new molecules, optionally keeping
only those a trained QSAR run predicts inside ``[min, max]`` (filtering by a QSAR model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlearn.chem.data import describe_invalid, load_smiles_csv
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.io import atomic_path, write_json

GENERATORS = ("lstm", "aae")


def train_generator(data: str | Path, out: str | Path, smiles_column: str | None = None, model: str = "lstm",
                    alphabet: str = "selfies", max_epochs: int = 30, max_time_minutes: float | None = None,
                    n_samples: int = 1000, condition: str | None = None, seed: int = 0, force: bool = False,
                    resume: bool = False, quiet: bool = False) -> dict:
    import torch

    from medlearn.chem.generate.metrics import generation_metrics, property_figure

    if model not in GENERATORS:
        raise InputError("--model", f"unknown generator '{model}'", f"choose from {', '.join(GENERATORS)}")
    table = load_smiles_csv(data, smiles_column, [condition] if condition else [], require_targets=False)
    msg = describe_invalid(table)
    if msg and not quiet:
        print(f"warning: {msg}")
    run = RunDirectory(Path(out))
    run.prepare(force=force, resume=resume)
    plan = {"data": str(data), "smiles_column": smiles_column or "smiles", "model": model, "alphabet": alphabet,
            "max_epochs": max_epochs, "max_time_minutes": max_time_minutes, "n_samples": n_samples,
            "condition": condition, "seed": seed, "n_molecules": len(table), "invalid_rows": table.invalid_rows}
    write_json(run.plan_file, plan)
    run.write_config({k: v for k, v in plan.items() if k not in ("n_molecules", "invalid_rows")})
    from medlearn.engine.seed import seed_everything

    seed_everything(seed)
    if model == "lstm":
        from medlearn.chem.generate.lstm import MoleculeLSTM

        gen = MoleculeLSTM(alphabet=alphabet, max_epochs=max_epochs, seed=seed, max_time_minutes=max_time_minutes)
        gen.fit(table.smiles)
        samples = gen.sample(n_samples, seed=seed)
        extra = {"val_nll": gen.val_nll_, "epochs": gen.epochs_}
    else:
        from medlearn.chem.generate.aae import FingerprintAAEGenerator

        gen = FingerprintAAEGenerator(max_epochs=max_epochs, seed=seed)
        cond = table.y[:, 0] if condition else None
        if cond is not None and np.isnan(cond).any():
            raise InputError(data, f"condition column '{condition}' has missing values", "fill or drop those rows")
        gen.fit(table.smiles, cond)
        c = float(np.nanmean(cond)) if cond is not None else None
        samples, sims = gen.sample(n_samples, table.smiles, condition=c, seed=seed)
        extra = {"reconstruction_auc": gen.reconstruction_auc_, "mean_library_similarity": float(sims.mean()),
                 "note": "AAE samples are the nearest library molecules (here: the training set) to generated "
                         "fingerprints, as in Kadurin et al. 2017, so novelty w.r.t. that library is 0 by design"}
    with atomic_path(run.model_file) as tmp:
        torch.save({"format": "medlearn.generate/1", "model": gen, "plan": plan}, tmp)
    metrics = {**generation_metrics(samples, table.smiles), **extra}
    with atomic_path(run.path / "samples.csv", suffix=".csv") as tmp:
        pd.DataFrame({"smiles": samples}).to_csv(tmp, index=False)
    from medlearn.evaluation.report import Report

    rep = Report(f"Generation: {Path(str(data)).name}", f"{model} ({alphabet if model == 'lstm' else 'MACCS'})")
    rep.add_metrics({k: v for k, v in metrics.items() if not isinstance(v, str)}, caption=f"{n_samples} samples")
    rep.add_figure(property_figure(samples, table.smiles), "properties", caption="generated vs training")
    rep.add_table([{"smiles": s} for s in samples[:20]], caption="first samples")
    rep.write(run.report_file)
    run.write_versions(seed)
    write_json(run.metrics_file, metrics)
    if not quiet:
        print(f"validity {metrics['validity']:.3f}, uniqueness {metrics['uniqueness']:.3f}, "
              f"novelty {metrics['novelty']:.3f}, diversity {metrics['internal_diversity']:.3f} (run: {run.path})")
    return metrics


def load_generator(run_path: str | Path):
    import torch

    run = RunDirectory(Path(run_path)).require_finished()
    try:
        blob = torch.load(run.model_file, weights_only=False, map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise InputError(run.model_file, f"cannot load the generator ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != "medlearn.generate/1":
        raise InputError(run.model_file, "not a medlearn generator", "point to a run made by medlearn generate train")
    return blob["model"], blob["plan"]


def sample_run(run_path: str | Path, n: int, out: str | Path, seed: int = 1, temperature: float = 1.0,
               qsar_run: str | Path | None = None, qsar_min: float | None = None, qsar_max: float | None = None,
               max_rounds: int = 10, quiet: bool = False) -> pd.DataFrame:
    """``n`` new molecules to ``out`` (CSV: smiles, valid, novel[, predicted value, in filter])."""
    from medlearn.chem.generate.metrics import canonical

    gen, plan = load_generator(run_path)
    train = {canonical(s) for s in getattr(gen, "training_smiles_", [])}
    qsar = None
    if qsar_run is not None:
        from medlearn.chem.workflow import _load_run

        _, qsar, _ = _load_run(qsar_run)
    rows: list[dict] = []
    for r in range(max_rounds):
        if plan["model"] == "lstm":
            batch = gen.sample(n, temperature=temperature, seed=seed + r)
        else:
            lib = load_smiles_csv(plan["data"], plan["smiles_column"], [], require_targets=False).smiles
            batch, _ = gen.sample(n, lib, seed=seed + r)
        canon = [canonical(s) for s in batch]
        new = [{"smiles": c, "novel": c not in train} for c in canon if c is not None]
        if qsar is not None and new:
            pred = qsar.predict_values([x["smiles"] for x in new])[:, 0]
            for x, p in zip(new, pred, strict=True):
                x["predicted"] = float(p)
            new = [x for x in new if (qsar_min is None or x["predicted"] >= qsar_min)
                   and (qsar_max is None or x["predicted"] <= qsar_max)]
        rows.extend(new)
        if qsar is None or len(rows) >= n:
            break
    df = pd.DataFrame(rows[:n])
    with atomic_path(out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    if not quiet:
        print(f"wrote {len(df)} molecules to {out}")
    return df
