"""``medlearn generate``: train a molecule generator on a SMILES CSV and sample new molecules."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Molecule generation (SELFIES/SMILES LSTM, fingerprint AAE).")


@app.command()
def train(
    data: Path = typer.Argument(..., help="CSV with a SMILES column."),
    smiles: str = typer.Option(None, "--smiles", help="SMILES column (default: 'smiles')."),
    out: Path = typer.Option(Path("runs/generate"), "-o", "--out"),
    model: str = typer.Option("lstm", "--model", "-m", help="lstm | aae"),
    alphabet: str = typer.Option("selfies", "--alphabet", help="selfies | smiles (lstm only)"),
    max_epochs: int = typer.Option(30, "--max-epochs"),
    max_minutes: float = typer.Option(None, "--max-minutes", help="Wall-time cap for training."),
    n_samples: int = typer.Option(1000, "--n-samples", help="Samples drawn for the metrics."),
    condition: str = typer.Option(None, "--condition", help="AAE: property column to condition the decoder on."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(None, "--threads"),
    force: bool = typer.Option(False, "--force"),
    resume: bool = typer.Option(False, "--resume"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a generator; writes a run directory with metrics (validity, uniqueness, novelty, diversity)."""
    from medlearn.chem.generate.workflow import train_generator
    from medlearn.engine.seed import configure_cpu_threads

    configure_cpu_threads(threads)
    train_generator(data, out, smiles, model, alphabet, max_epochs, max_minutes, n_samples, condition, seed,
                    force, resume, quiet)


@app.command()
def sample(
    run: Path = typer.Argument(..., help="Finished generator run directory."),
    n: int = typer.Option(100, "-n", help="Number of molecules."),
    out: Path = typer.Option(..., "-o", "--out", help="Output CSV."),
    seed: int = typer.Option(1, "--seed"),
    temperature: float = typer.Option(1.0, "--temperature"),
    qsar: Path = typer.Option(None, "--qsar", help="QSAR run directory used to filter the samples."),
    qsar_min: float = typer.Option(None, "--min", help="Keep molecules predicted >= this (first target)."),
    qsar_max: float = typer.Option(None, "--max", help="Keep molecules predicted <= this (first target)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Sample new molecules, optionally filtered by a trained QSAR model's predictions."""
    from medlearn.chem.generate.workflow import sample_run

    sample_run(run, n, out, seed, temperature, qsar, qsar_min, qsar_max, quiet=quiet)
