"""``medlearn cpi``: compound-protein interaction (binding affinity) from SMILES + protein sequence."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Compound-protein interaction (binding affinity).")


@app.command()
def train(
    data: Path = typer.Argument(..., help="DeepDTA folder (davis/kiba layout) or CSV of (SMILES, sequence, value)."),
    out: Path = typer.Option(Path("runs/cpi"), "-o", "--out"),
    fmt: str = typer.Option("auto", "--format", help="auto | deepdta | csv"),
    smiles: str = typer.Option("smiles", "--smiles", help="CSV: SMILES column."),
    sequence: str = typer.Option("sequence", "--sequence", help="CSV: protein sequence column."),
    target: str = typer.Option("y", "--target", help="CSV: affinity column."),
    max_epochs: int = typer.Option(200, "--max-epochs"),
    max_minutes: float = typer.Option(None, "--max-minutes", help="Wall-time cap for training."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(None, "--threads"),
    force: bool = typer.Option(False, "--force"),
    resume: bool = typer.Option(False, "--resume"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train an affinity model; metrics (MSE, CI, r_m²) per split in the run directory."""
    from medlearn.chem.cpi.workflow import train_cpi
    from medlearn.engine.seed import configure_cpu_threads

    configure_cpu_threads(threads)
    train_cpi(data, out, fmt, smiles, sequence, target, max_epochs, max_minutes, seed, force, resume, quiet)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Finished CPI run directory."),
    data: Path = typer.Argument(..., help="CSV with SMILES and sequence columns."),
    out: Path = typer.Option(..., "-o", "--out"),
    smiles: str = typer.Option("smiles", "--smiles"),
    sequence: str = typer.Option("sequence", "--sequence"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Predict affinities for (compound, protein) pairs."""
    from medlearn.chem.cpi.workflow import predict_cpi

    predict_cpi(run, data, out, smiles, sequence, quiet)
