"""``medlearn cpi train|predict|evaluate|plan-fields``: compound-protein binding affinity (DeepDTA-style)."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import TaskArgs, console, evaluate_command, plan_fields_command, predict_command, train_command

app = typer.Typer(no_args_is_help=True, help="Compound-protein interaction: DeepDTA-style binding affinity.")

DATASET = typer.Option(None, "--dataset", help="davis | kiba (for the davis_kiba_dta folder).")
SMILES = typer.Option(None, "--smiles", help="SMILES column of a CSV (default: smiles, drug, compound ...).")
SEQUENCE = typer.Option(None, "--sequence", help="Protein sequence column (default: sequence, target_sequence ...).")
VALUE = typer.Option(None, "--value", help="Affinity / 0-1 label column (default: value, affinity, label ...).")


@train_command(app, "cpi")
def train(data: Path = typer.Argument(..., help="CSV of (smiles, sequence, value) or the davis_kiba_dta folder."),
          dataset: str = DATASET, smiles: str = SMILES, sequence: str = SEQUENCE, value: str = VALUE) -> TaskArgs:
    """Train on the training pairs, select on validation, report the test pairs once (CIs over pairs)."""
    return data, {"dataset": dataset, "smiles_column": smiles, "sequence_column": sequence, "value_column": value}


@predict_command(app, "cpi", out_help="Output CSV: the input rows + prediction (+ prediction_std for an ensemble).")
def predict(model, out: Path, data: Path = typer.Argument(..., help="CSV with SMILES and protein sequence columns."),
            smiles: str = SMILES, sequence: str = SEQUENCE) -> list[Path]:
    """Predict the affinity (or interaction probability) of every valid row."""
    return model.predict_files([data], out, smiles_column=smiles, sequence_column=sequence, echo=console.print)


@evaluate_command(app, "cpi")
def evaluate(dataset: str = DATASET, smiles: str = SMILES, sequence: str = SEQUENCE, value: str = VALUE) -> dict:
    """CI, MSE, r_m^2 (or ROC/PR-AUC) with 95% CIs on labelled pairs: every row of a CSV, or Davis/KIBA's
    test fold."""
    return {"dataset": dataset, "smiles_column": smiles, "sequence_column": sequence, "value_column": value}


plan_fields_command(app, "cpi")
