"""``medlearn qsar train|predict|evaluate|compare|plan-fields``: QSAR models on SMILES CSVs.

A thin layer over :mod:`medlearn.tasks.qsar`: ``train`` / ``predict`` / ``evaluate`` get the options every
task shares from :mod:`medlearn.cli.common` and declare only how the CSV is read and split. Model and
training choices are plan fields (``--set network.name=dnn``, ``--set train.ensemble=5``; see
``plan-fields``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import (
    TaskArgs,
    console,
    evaluate_command,
    plan_fields_command,
    predict_command,
    train_command,
)

app = typer.Typer(no_args_is_help=True, help="QSAR: molecular property prediction from SMILES.")

SPLIT_HELP = "random | scaffold (balanced Bemis-Murcko) | stratified | a split .json of CSV rows (shared format)"
SMILES = typer.Option(None, "--smiles", help="SMILES column (default: 'smiles').")
TARGET = typer.Option(None, "--target", "-t", help="Target column(s); repeat for multitask (default: every numeric "
                                                   "column).")
TASK = typer.Option(None, "--task", help="regression | classification (default: inferred, labels all 0/1).")


def _reading(smiles: str | None, target: list[str] | None, split: str, task: str | None) -> dict:
    return {"smiles_column": smiles, "targets": list(target) if target else None, "split": split, "task_type": task}


@train_command(app, "qsar")
def train(data: Path = typer.Argument(..., help="CSV with a SMILES column and target columns."),
          smiles: str = SMILES, target: list[str] = TARGET,
          split: str = typer.Option("random", "--split", help=SPLIT_HELP), task: str = TASK) -> TaskArgs:
    """Plan, train (auto: candidates chosen on validation), evaluate once on test, write the run directory."""
    return data, _reading(smiles, target, split, task)


@predict_command(app, "qsar", out_help="Output CSV: the input's columns, <target>_pred, <target>_std, uncertainty, "
                                       "applicability_domain.")
def predict(model, out: Path, data: Path = typer.Argument(..., help="CSV with a SMILES column."),
            smiles: str = typer.Option(None, "--smiles", help="SMILES column (default: the one used in training).")
            ) -> list[Path]:
    """Predict with uncertainty and applicability domain (max Tanimoto to the training molecules)."""
    return model.predict_files(data, out, smiles_column=smiles, echo=console.print)


@evaluate_command(app, "qsar")
def evaluate(smiles: str = typer.Option(None, "--smiles", help="SMILES column (default: the one used in training).")
             ) -> dict:
    """Metrics with 95% CIs and a report on a labelled CSV, flagging molecules the model learnt from."""
    return {"smiles_column": smiles}


@app.command()
def compare(data: Path = typer.Argument(..., help="CSV with a SMILES column and target columns."),
            smiles: str = SMILES, target: list[str] = TARGET,
            out: Path = typer.Option(Path("runs/qsar_compare"), "-o", "--out", help="Output folder."),
            split: str = typer.Option("random", "--split", help=SPLIT_HELP),
            seed: int = typer.Option(None, "--seed", help="Random seed (= --set train.seed=N)."),
            models: str = typer.Option(None, "--models", help="Comma-separated (default: dnn, mpnn, every baseline, "
                                                              "auto)."),
            task: str = TASK,
            set_: list[str] = typer.Option(None, "--set", help="Plan override key=value, e.g. train.max_epochs=20."),
            plan_file: Path = typer.Option(None, "--plan", help="YAML file of plan overrides."),
            force: bool = typer.Option(False, "--force", help="Overwrite a finished comparison."),
            quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
            n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the test CIs.")) -> None:
    """Train the DNN, the graph net, every baseline and auto on one split; write one table, plot and report."""
    from medlearn.tasks.base import TrainRequest
    from medlearn.tasks.qsar.compare import compare_models

    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    request = TrainRequest("qsar", str(data), str(out), list(set_ or []), str(plan_file) if plan_file else None,
                           seed, None, force, False, not quiet, n_boot, _reading(smiles, target, split, task))
    compare_models(request, names, echo=console.print if not quiet else (lambda *_a, **_k: None))
    console.print(f"wrote {out / 'comparison.json'}, comparison.md, comparison.png and report.html")


plan_fields_command(app, "qsar")
