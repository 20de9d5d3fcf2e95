"""``medlearn classify train|predict|evaluate|explain|pretrain|plan-fields``."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import (
    TaskArgs,
    console,
    evaluate_command,
    load_task_model,
    plan_fields_command,
    predict_command,
    train_command,
)

app = typer.Typer(no_args_is_help=True, help="Image classification (2D/3D, per image and per patient).")

LABEL = typer.Option(None, "--label", help="Label column(s) of a CSV (several = multi-label).")
OUTSIDE = typer.Option(False, "--allow-outside-paths", help="Let a CSV name images outside its folder.")
SERIES = typer.Option(None, "--series", help="DICOM folder with several series: which one (index or UID).")
EACH = typer.Option(False, "--each-series", help="DICOM folder with several series: predict each.")


@train_command(app, "classify")
def train(data: Path = typer.Argument(..., help="Dataset: MedMNIST .npz, CSV table or class folders."),
          label: list[str] = LABEL,
          task: str = typer.Option(None, "--task", help="binary | multiclass | multilabel | ordinal (default: "
                                                        "inferred)."),
          classes: str = typer.Option(None, "--classes", help="Comma-separated label set in order (ordinal)."),
          split_file: Path = typer.Option(None, "--split-file", help="JSON {train: [...], val: [...], test: [...]}."),
          init_from: Path = typer.Option(None, "--init-from", help="Run whose backbone initialises this one."),
          allow_outside_paths: bool = OUTSIDE) -> TaskArgs:
    """Plan from the data, train, select on validation, evaluate once on test, write the report."""
    return data, {"label_columns": list(label) if label else None, "task": task,
                  "classes": classes.split(",") if classes else None,
                  "split_file": str(split_file) if split_file else None,
                  "init_from": str(init_from) if init_from else None, "allow_outside_paths": allow_outside_paths}


@predict_command(app, "classify", out_help="Output CSV of class probabilities (+ <out>_patients.csv).")
def predict(model, out: Path,
            inputs: list[Path] = typer.Argument(..., help="Images, folders, DICOM series (folder or zip), a CSV with "
                                                          "an 'image' column, or .npz."),
            series: str = SERIES, each_series: bool = EACH) -> list[Path]:
    """Write class probabilities (and per-patient ones when the inputs carry patient ids)."""
    return model.predict_files(inputs, out, series=series, each_series=each_series, echo=console.print)


@evaluate_command(app, "classify")
def evaluate(label: list[str] = LABEL, allow_outside_paths: bool = OUTSIDE) -> dict:
    """Metrics with 95% CIs and a report on labelled data (its val/test splits, or all rows)."""
    return {"label_columns": list(label) if label else None, "allow_outside_paths": allow_outside_paths}


@app.command()
def explain(run: Path = typer.Argument(..., help="Run directory of a trained classifier."),
            inputs: list[Path] = typer.Argument(..., help="Images, folders, CSV or .npz."),
            out: Path = typer.Option(Path("explanations"), "-o", "--out", help="Output folder."),
            method: str = typer.Option("gradcam", "--method", help="gradcam | occlusion"),
            limit: int = typer.Option(64, "--limit", help="At most this many images.")) -> None:
    """Per image: the image and its Grad-CAM (or occlusion) map side by side with a colour bar; 3D maps
    also as NIfTI for a viewer."""
    written = load_task_model("classify", run).explain(inputs, out, method=method, limit=limit)
    console.print(f"wrote {len(written)} file(s) to {out}")


@app.command()
def pretrain(data: Path = typer.Argument(..., help="Images (labels ignored): .npz, CSV, folders."),
             out: Path = typer.Option(Path("runs/pretrain"), "-o", "--out"),
             set_: list[str] = typer.Option(None, "--set", help="Plan override key=value."),
             epochs: int = typer.Option(30, "--epochs", min=1),
             seed: int = typer.Option(None, "--seed"),
             force: bool = typer.Option(False, "--force"),
             resume: bool = typer.Option(False, "--resume"),
             quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Self-supervised contrastive pre-training (SimCLR) of a backbone on unlabeled images."""
    from medlearn.engine.workflow import train as run_training
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest

    request = TrainRequest("classify-pretrain", str(data), str(out), list(set_ or []), None, seed, None, force,
                           resume, not quiet, 0, {"epochs": epochs})
    metrics = run_training(get_task("classify-pretrain"), request, echo=console.print)
    console.print(f"pre-trained backbone in {out} (final loss {metrics['pretraining']['final_loss']:.4f}); "
                  f"use it with: medlearn classify train DATA --init-from {out}")


plan_fields_command(app, "classify")
