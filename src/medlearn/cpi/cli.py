"""Typer app over :mod:`medlearn.cpi`: ``train|predict|evaluate`` (DeepDTA-style affinity).

Meant to be mounted as ``medlearn cpi`` (``src/medlearn/cli/cpi.py`` can re-export ``app``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import console, print_json

app = typer.Typer(no_args_is_help=True)


@app.command()
def train(data: Path = typer.Argument(..., help="CSV of (smiles, sequence, value) or the davis_kiba_dta folder."),
          out: Path = typer.Option(Path("runs/cpi"), "-o", "--out", help="Run directory."),
          dataset: str = typer.Option(None, "--dataset", help="davis | kiba (for the davis_kiba_dta folder)."),
          smiles: str = typer.Option(None, "--smiles", help="SMILES column (CSV)."),
          sequence: str = typer.Option(None, "--sequence", help="Protein sequence column (CSV)."),
          value: str = typer.Option(None, "--value", help="Affinity / label column (CSV)."),
          set_: list[str] = typer.Option(None, "--set", help="Plan override key=value, e.g. train.max_epochs=20."),
          plan_file: Path = typer.Option(None, "--plan", help="YAML file of plan overrides."),
          seed: int = typer.Option(0, "--seed"),
          force: bool = typer.Option(False, "--force", help="Overwrite a finished run."),
          resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
          quiet: bool = typer.Option(False, "--quiet", help="No progress bar.")) -> None:
    """Train on the training pairs, select on validation, report the test pairs once."""
    from medlearn.cpi.train import CPITrainOptions, train_cpi

    opts = CPITrainOptions(str(data), str(out), dataset, smiles, sequence, value, list(set_ or []),
                           str(plan_file) if plan_file else None, seed, force, resume, not quiet)
    train_cpi(opts, echo=console.print)
    console.print(f"run written to {out}")


@app.command()
def predict(run: Path = typer.Argument(..., help="Run directory of 'medlearn cpi train'."),
            data: Path = typer.Argument(..., help="CSV with SMILES and protein sequence columns."),
            out: Path = typer.Option(..., "-o", "--out", help="Output CSV (input + prediction column)."),
            smiles: str = typer.Option(None, "--smiles"),
            sequence: str = typer.Option(None, "--sequence")) -> None:
    """Predict the affinity (or interaction probability) of every valid row."""
    from medlearn.cpi.train import predict_cpi

    n = predict_cpi(run, data, out, smiles, sequence)
    console.print(f"{n} predictions written to {out}")


@app.command()
def evaluate(run: Path = typer.Argument(..., help="Run directory of 'medlearn cpi train'."),
             data: Path = typer.Argument(..., help="CSV of labelled pairs, or davis_kiba_dta (test fold)."),
             dataset: str = typer.Option(None, "--dataset", help="davis | kiba (for the davis_kiba_dta folder)."),
             smiles: str = typer.Option(None, "--smiles"),
             sequence: str = typer.Option(None, "--sequence"),
             value: str = typer.Option(None, "--value")) -> None:
    """MSE, concordance index, r_m^2 (or ROC/PR-AUC) on DATA; writes RUN/evaluation.json."""
    from medlearn.cpi.train import evaluate_cpi

    print_json(evaluate_cpi(run, data, dataset, smiles, sequence, value))
