"""``medlearn qsar``: train, predict, evaluate and compare QSAR models on SMILES CSVs.

A thin layer over :mod:`medlearn.chem.workflow`; every option maps to a Python argument.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="QSAR: molecular property prediction from SMILES.")

MODEL_HELP = "auto (candidates chosen on val) | dnn | mpnn | rf | et | hgb | svm | nb | dt | knn | linear"
SPLIT_HELP = "random | scaffold (balanced Bemis-Murcko) | stratified | a split .json (shared format)"


def _threads(n: int | None) -> None:
    from medlearn.engine.seed import configure_cpu_threads

    configure_cpu_threads(n)


@app.command()
def train(
    data: Path = typer.Argument(..., help="CSV with a SMILES column and target columns."),
    smiles: str = typer.Option(None, "--smiles", help="SMILES column (default: 'smiles')."),
    target: list[str] = typer.Option(None, "--target", "-t", help="Target column(s); repeat for multitask."),
    out: Path = typer.Option(Path("runs/qsar"), "-o", "--out", help="Run directory."),
    split: str = typer.Option("random", "--split", help=SPLIT_HELP),
    seed: int = typer.Option(0, "--seed"),
    model: str = typer.Option("auto", "--model", "-m", help=MODEL_HELP),
    task: str = typer.Option(None, "--task", help="regression | classification (default: inferred)."),
    features: str = typer.Option(None, "--features", help="e.g. morgan, morgan_count+rdkit2d."),
    radius: int = typer.Option(None, "--radius", help="Morgan radius (2 = ECFP4)."),
    n_bits: int = typer.Option(None, "--n-bits", help="Fingerprint length."),
    n_seeds: int = typer.Option(None, "--n-seeds", help="Ensemble size for dnn/mpnn (spread = uncertainty)."),
    max_epochs: int = typer.Option(None, "--max-epochs"),
    patience: int = typer.Option(None, "--patience"),
    set_: list[str] = typer.Option(None, "--set", help="Plan override key=value, e.g. n_seeds=5 or features=morgan."),
    plan_file: Path = typer.Option(None, "--plan", help="YAML file of plan overrides."),
    threads: int = typer.Option(None, "--threads", help="CPU threads (default: all this process may use)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a finished run."),
    resume: bool = typer.Option(False, "--resume", help="Retrain into an interrupted run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a QSAR model and write a run directory (plan, model, metrics per split, report)."""
    from medlearn.chem.workflow import train_run

    _threads(threads)
    _check_task(task)
    train_run(data, out, smiles, list(target) if target else None, split=split, seed=seed, task_type=task,
              force=force, resume=resume, quiet=quiet, model=model, features=features, radius=radius,
              n_bits=n_bits, n_seeds=n_seeds, max_epochs=max_epochs, patience=patience, set_items=set_,
              plan_file=plan_file)


def _check_task(task: str | None) -> None:
    from medlearn.errors import InputError

    if task not in (None, "regression", "classification"):
        raise InputError("--task", f"unknown task '{task}'", "use regression or classification")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Finished run directory."),
    data: Path = typer.Argument(..., help="CSV with a SMILES column."),
    out: Path = typer.Option(..., "-o", "--out", help="Output CSV."),
    smiles: str = typer.Option(None, "--smiles", help="SMILES column (default: the one used in training)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Predict with uncertainty (ensemble spread) and applicability domain (max Tanimoto to training)."""
    from medlearn.chem.workflow import predict_run

    predict_run(run, data, out, smiles, quiet=quiet)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Finished run directory."),
    data: Path = typer.Argument(..., help="Labelled CSV (the run's target columns)."),
    smiles: str = typer.Option(None, "--smiles"),
    out: Path = typer.Option(None, "-o", "--out", help="Write the metrics as JSON here too."),
) -> None:
    """Metrics of a trained run on a labelled CSV (printed as JSON)."""
    from medlearn.chem.workflow import evaluate_run

    metrics = evaluate_run(run, data, smiles, out)
    typer.echo(json.dumps({k: v for k, v in metrics.items() if k != "per_task"}, indent=2, default=str))


@app.command()
def compare(
    data: Path = typer.Argument(..., help="CSV with a SMILES column and target columns."),
    smiles: str = typer.Option(None, "--smiles"),
    target: list[str] = typer.Option(None, "--target", "-t"),
    out: Path = typer.Option(Path("runs/qsar_compare"), "-o", "--out"),
    split: str = typer.Option("random", "--split", help=SPLIT_HELP),
    seed: int = typer.Option(0, "--seed"),
    models: str = typer.Option(None, "--models", help="Comma-separated (default: dnn, mpnn, every baseline, auto)."),
    task: str = typer.Option(None, "--task"),
    max_epochs: int = typer.Option(None, "--max-epochs"),
    set_: list[str] = typer.Option(None, "--set", help="Plan override key=value, e.g. n_seeds=5 or features=morgan."),
    plan_file: Path = typer.Option(None, "--plan", help="YAML file of plan overrides."),
    threads: int = typer.Option(None, "--threads"),
    force: bool = typer.Option(False, "--force"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train the DNN, the graph net and every baseline on one split; write one table and plot."""
    from medlearn.chem.workflow import compare_run

    _threads(threads)
    _check_task(task)
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    compare_run(data, out, smiles, list(target) if target else None, split=split, seed=seed, task_type=task,
                models=names, force=force, quiet=quiet, max_epochs=max_epochs, set_items=set_, plan_file=plan_file)
