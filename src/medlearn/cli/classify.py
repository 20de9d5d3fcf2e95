"""``medlearn classify train|predict|evaluate|explain|pretrain``."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import console, print_json

app = typer.Typer(no_args_is_help=True)


@app.command()
def train(data: Path = typer.Argument(..., help="Dataset: MedMNIST .npz, CSV table or class folders."),
          out: Path = typer.Option(Path("runs/classify"), "-o", "--out", help="Run directory."),
          label: list[str] = typer.Option(None, "--label", help="Label column(s) (several = multi-label)."),
          task: str = typer.Option(None, "--task",
                                   help="binary | multiclass | multilabel | ordinal (default: inferred)."),
          classes: str = typer.Option(None, "--classes", help="Comma-separated label set in order (ordinal)."),
          split_file: Path = typer.Option(None, "--split-file", help="JSON {train: [...], val: [...], test: [...]}."),
          set_: list[str] = typer.Option(None, "--set", help="Plan override key=value, e.g. train.max_epochs=20."),
          plan_file: Path = typer.Option(None, "--plan", help="YAML file of plan overrides."),
          init_from: Path = typer.Option(None, "--init-from", help="Run whose backbone initialises this one."),
          seed: int = typer.Option(0, "--seed"),
          devices: int = typer.Option(None, "--devices", help="Number of devices (DDP when > 1)."),
          force: bool = typer.Option(False, "--force", help="Overwrite a finished run."),
          resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
          quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
          n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the CIs.")) -> None:
    """Train, select on validation, evaluate once on test, write the report."""
    from medlearn.tasks.classify.train import TrainOptions, train_classifier

    overrides = list(set_ or [])
    if devices:
        overrides.append(f"train.devices={devices}")
    options = TrainOptions(str(data), str(out), list(label) if label else None, task,
                           classes.split(",") if classes else None, str(split_file) if split_file else None,
                           overrides, str(plan_file) if plan_file else None, seed, force, resume,
                           str(init_from) if init_from else None, not quiet, n_boot)
    metrics = train_classifier(options, echo=console.print)
    if not metrics:  # a DDP worker process: the primary one reports
        return
    _print_headline(metrics)
    console.print(f"run directory: {out}  (report: {out / 'report.html'})")


@app.command()
def predict(run: Path = typer.Argument(..., help="Run directory of a trained classifier."),
            inputs: list[Path] = typer.Argument(..., help="Images, folders, a CSV with an 'image' column, or .npz."),
            out: Path = typer.Option(..., "-o", "--out", help="Output CSV of class probabilities.")) -> None:
    """Write class probabilities (and per-patient ones when the inputs carry patient ids)."""
    from medlearn.tasks.classify.api import Classifier

    clf = Classifier.load(run)
    table, patient_table = clf.predict_table(inputs)
    from medlearn.io import write_text

    write_text(out, table.to_csv(index=False))
    console.print(f"wrote {out} ({len(table)} rows)")
    if patient_table is not None:
        pout = out.with_name(out.stem + "_patients.csv")
        write_text(pout, patient_table.to_csv(index=False))
        console.print(f"wrote {pout} ({len(patient_table)} patients)")


@app.command()
def evaluate(run: Path = typer.Argument(..., help="Run directory of a trained classifier."),
             data: Path = typer.Argument(..., help="Labelled dataset (same layouts as train)."),
             out: Path = typer.Option(None, "-o", "--out", help="Folder for metrics.json and report.html."),
             label: list[str] = typer.Option(None, "--label"),
             n_boot: int = typer.Option(1000, "--bootstrap")) -> None:
    """Metrics with 95% CIs and a report for a labelled dataset (its val/test splits, or all rows)."""
    from medlearn.tasks.classify.api import Classifier

    clf = Classifier.load(run)
    out = out or Path(run) / f"eval-{Path(data).stem}"
    metrics = clf.evaluate(data, out, label_columns=list(label) if label else None, n_boot=n_boot)
    _print_headline(metrics)
    console.print(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")


@app.command()
def explain(run: Path = typer.Argument(..., help="Run directory of a trained classifier."),
            inputs: list[Path] = typer.Argument(..., help="Images, folders, CSV or .npz."),
            out: Path = typer.Option(Path("explanations"), "-o", "--out", help="Output folder of PNG overlays."),
            method: str = typer.Option("gradcam", "--method", help="gradcam | occlusion"),
            limit: int = typer.Option(64, "--limit", help="At most this many images.")) -> None:
    """Grad-CAM or occlusion-sensitivity overlays of the predicted class, one PNG per image."""
    from medlearn.tasks.classify.api import Classifier

    written = Classifier.load(run).explain(inputs, out, method=method, limit=limit)
    console.print(f"wrote {len(written)} overlay(s) to {out}")


@app.command()
def pretrain(data: Path = typer.Argument(..., help="Images (labels ignored): .npz, CSV, folders."),
             out: Path = typer.Option(Path("runs/pretrain"), "-o", "--out"),
             set_: list[str] = typer.Option(None, "--set", help="Plan override key=value."),
             epochs: int = typer.Option(30, "--epochs"),
             seed: int = typer.Option(0, "--seed"),
             force: bool = typer.Option(False, "--force")) -> None:
    """Self-supervised contrastive pre-training (SimCLR) of a backbone on unlabeled images."""
    from medlearn.tasks.classify.pretrain import PretrainOptions, pretrain_backbone

    result = pretrain_backbone(PretrainOptions(str(data), str(out), list(set_ or []), epochs, seed, force),
                               echo=console.print)
    console.print(f"pre-trained backbone in {out} (final loss {result['final_loss']:.4f}); "
                  f"use it with: medlearn classify train DATA --init-from {out}")


def _print_headline(metrics: dict) -> None:
    rows = {}
    for split in ("val", "test", "all"):
        if split in metrics:
            rows[split] = {m: metrics[split][m]["value"] for m in ("auc", "accuracy", "balanced_accuracy", "ece")
                           if m in metrics[split]}
    if "patient" in metrics:
        rows["patient"] = {s: {m: metrics["patient"][s][m]["value"] for m in ("auc", "accuracy")}
                           for s in ("val", "test", "all") if s in metrics["patient"]}
    if "val" in rows and metrics.get("training", {}).get("val_seen_in_training"):
        rows["val (trained on)"] = rows.pop("val")  # not an estimate on unseen images
    print_json(rows)
