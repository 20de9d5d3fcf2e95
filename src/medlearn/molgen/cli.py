"""Typer app over :mod:`medlearn.molgen`: ``train|sample|evaluate`` (SELFIES LSTM, fingerprint AAE).

Meant to be mounted as ``medlearn generate`` (``src/medlearn/cli/generate.py`` can re-export ``app``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import console, print_json

app = typer.Typer(no_args_is_help=True)


@app.command()
def train(data: Path = typer.Argument(..., help="CSV with a SMILES column (MoleculeNet / chemprop layout)."),
          smiles: str = typer.Option(None, "--smiles", help="SMILES column (default: a column named smiles)."),
          model: str = typer.Option("lstm", "--model", help="lstm | gru | aae (AAE screening LSTM samples)."),
          out: Path = typer.Option(Path("runs/generate"), "-o", "--out", help="Run directory."),
          set_: list[str] = typer.Option(None, "--set", help="Plan override key=value, e.g. train.max_epochs=5."),
          plan_file: Path = typer.Option(None, "--plan", help="YAML file of plan overrides."),
          seed: int = typer.Option(0, "--seed"),
          force: bool = typer.Option(False, "--force", help="Overwrite a finished run."),
          resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
          quiet: bool = typer.Option(False, "--quiet", help="No progress bar.")) -> None:
    """Train a generator on the molecules of DATA, then sample and score it (metrics.json, report.html)."""
    from medlearn.molgen.train import GenerateTrainOptions, train_generator

    opts = GenerateTrainOptions(str(data), str(out), smiles, model, list(set_ or []),
                                str(plan_file) if plan_file else None, seed, force, resume, not quiet)
    train_generator(opts, echo=console.print)
    console.print(f"run written to {out}")


@app.command()
def sample(run: Path = typer.Argument(..., help="Run directory of 'medlearn generate train'."),
           n: int = typer.Option(1000, "-n", help="Number of molecules."),
           out: Path = typer.Option(..., "-o", "--out", help="Output CSV (columns smiles, valid[, score])."),
           temperature: float = typer.Option(None, "--temperature", help="Sampling temperature (default: plan's)."),
           qsar: Path = typer.Option(None, "--qsar", help="QSAR run whose predictions filter the samples."),
           min_score: float = typer.Option(None, "--min-score", help="Keep molecules whose QSAR prediction >= this."),
           focus: int = typer.Option(0, "--focus", help="Rounds of fine-tuning towards high QSAR scores first."),
           seed: int = typer.Option(0, "--seed")) -> None:
    """Sample N molecules; with --qsar, optionally focused on (--focus) and filtered by (--min-score) its scores."""
    import pandas as pd

    from medlearn.errors import InputError
    from medlearn.io import atomic_path
    from medlearn.molgen.metrics import canonical
    from medlearn.molgen.train import sample_run

    if temperature is not None and temperature <= 0:
        raise InputError("--temperature", f"must be > 0, got {temperature}")
    score = _qsar_score(qsar) if qsar else None
    if score is not None and min_score is None and focus <= 0:
        raise InputError("--qsar", "--qsar needs --min-score and/or --focus", "e.g. --min-score 0.5 --focus 3")
    if (min_score is not None or focus > 0) and score is None:
        raise InputError("--min-score", "--min-score/--focus need --qsar RUN", "give a 'medlearn qsar train' run")
    smiles = sample_run(run, n, temperature, seed, score, min_score, focus)
    df = pd.DataFrame({"smiles": smiles, "valid": [canonical(s) is not None for s in smiles]})
    if score is not None and smiles:
        df["score"] = score(smiles)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    console.print(f"{len(df)} molecules ({int(df['valid'].sum())} valid) written to {out}")


def _qsar_score(run: Path):
    """``score(smiles) -> (N,)``: the first task's prediction of a 'medlearn qsar' run."""
    import numpy as np

    from medlearn.errors import InputError

    model_file = run / "model.pt"
    if not model_file.exists():
        raise InputError(run, "no model.pt here", "give a finished 'medlearn qsar train' run")
    from medlearn.chem.api import load_model

    model, _ = load_model(model_file)

    def score(smiles: list[str]) -> np.ndarray:
        pred = np.asarray(model.predict_values(smiles), dtype=float)
        return pred.reshape(len(smiles), -1)[:, 0]

    return score


@app.command()
def evaluate(run: Path = typer.Argument(..., help="Run directory of 'medlearn generate train'."),
             n: int = typer.Option(2000, "-n", help="Molecules to sample for the metrics."),
             temperature: float = typer.Option(None, "--temperature"),
             seed: int = typer.Option(0, "--seed"),
             json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON.")) -> None:
    """Validity, uniqueness, novelty, internal diversity, property distributions; rewrites the report."""
    from medlearn.molgen.train import evaluate_run

    metrics = evaluate_run(run, n, temperature, seed, echo=console.print)
    if json_out:
        print_json(metrics)
