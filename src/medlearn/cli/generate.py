"""``medlearn generate train|predict|sample|evaluate|plan-fields``: molecule generation.

``predict`` and its alias ``sample`` write N samples to a CSV, optionally focused on (``--focus``) and
filtered by (``--min-score``) the predictions of a QSAR run (``--qsar RUN``); ``evaluate RUN DATA`` scores
fresh samples against the molecules of DATA (a SMILES CSV) in ``RUN/evaluations/<name>/``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import TaskArgs, console, evaluate_command, plan_fields_command, predict_command, train_command

app = typer.Typer(no_args_is_help=True, help="Molecule generation: SELFIES/SMILES LSTM or GRU, fingerprint AAE, "
                                             "focused on a QSAR score.")

SMILES = typer.Option(None, "--smiles", help="SMILES column (default: a column named smiles).")
TEMPERATURE = typer.Option(None, "--temperature", help="Sampling temperature (default: the plan's).")
SEED = typer.Option(None, "--seed", help="Sampling seed (default: the run's train.seed).")


@train_command(app, "generate")
def train(data: Path = typer.Argument(..., help="CSV with a SMILES column (MoleculeNet / chemprop layout)."),
          smiles: str = SMILES) -> TaskArgs:
    """Learn the molecules of DATA (network: --set network.name=lstm|gru|aae), then sample and score it."""
    return data, {"smiles_column": smiles}


def _sample(model, out: Path, n: int = typer.Option(1000, "-n", help="Number of molecules."),
            temperature: float = TEMPERATURE,
            qsar: Path = typer.Option(None, "--qsar", help="QSAR run whose first target scores the samples."),
            min_score: float = typer.Option(None, "--min-score", help="Keep molecules whose QSAR score >= this."),
            focus: int = typer.Option(0, "--focus", help="Rounds of fine-tuning towards high QSAR scores first."),
            seed: int = SEED) -> list[Path]:
    """Sample N molecules (CSV: smiles, valid[, score]); with --qsar, focused on and/or filtered by its scores."""
    return model.predict_files([], out, n=n, temperature=temperature, qsar=qsar, min_score=min_score, focus=focus,
                               seed=seed, echo=console.print)


OUT_HELP = "Output CSV (columns smiles, valid[, score])."
predict_command(app, "generate", out_help=OUT_HELP)(_sample)
predict_command(app, "generate", name="sample", out_help=OUT_HELP)(_sample)


@evaluate_command(app, "generate")
def evaluate(smiles: str = SMILES,
             n: int = typer.Option(None, "-n", help="Molecules to sample (default: the plan's eval_samples)."),
             temperature: float = TEMPERATURE, seed: int = SEED) -> dict:
    """Validity, uniqueness, novelty and property distributions of fresh samples against DATA's molecules."""
    return {"smiles_column": smiles, "n": n, "temperature": temperature, "seed": seed}


plan_fields_command(app, "generate")
