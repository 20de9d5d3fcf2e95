"""``medlearn segment``: train / predict / evaluate on the MSD (nnU-Net raw) layout."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Image segmentation (2D/3D, self-configuring U-Net family).")


@app.command()
def train(
    dataset: Path = typer.Argument(..., help="MSD / nnU-Net raw dataset folder (dataset.json, imagesTr/, labelsTr/)."),
    out: Path = typer.Option(None, "-o", "--out", help="Run directory (default: runs/segment-<dataset>)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a finished run."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from last.ckpt."),
    set_: list[str] = typer.Option(None, "--set", help="Override a plan field, e.g. --set train.max_time_minutes=5"),
    plan_file: Path = typer.Option(None, "--plan", "--plan-file", help="YAML file of plan overrides."),
    devices: int = typer.Option(None, "--devices", help="Processes/GPUs for DDP (default: 1)."),
    quiet: bool = typer.Option(False, "--quiet", help="No plan print-out or progress bar."),
) -> None:
    """Plan from the dataset's fingerprint, print the plan, train, pick post-processing on validation."""
    from medlearn.tasks.segment.train import train_segmentation

    run = out or Path("runs") / f"segment-{dataset.resolve().name}"
    overrides = [*(set_ or []), *([f"train.devices={devices}"] if devices else [])]
    rd = train_segmentation(dataset, run, overrides, plan_file, force=force, resume=resume, progress=not quiet,
                            echo=typer.echo)
    from medlearn.engine.distributed import is_primary_process

    if not is_primary_process():  # a DDP worker: the primary process reports
        return
    metrics = rd.read_metrics()
    val = metrics["validation"]
    typer.echo(f"run: {rd.path}")
    typer.echo(f"validation mean: {json.dumps(val['mean'])}")
    if "pooled" in val:
        typer.echo(f"validation pooled: {json.dumps(val['pooled'])}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A finished run directory."),
    inputs: Path = typer.Argument(..., help="An image, a folder of images (CASE_0000.ext ...) or an MSD dataset."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for the masks."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also write probability maps."),
    roi: Path = typer.Option(None, "--roi", help="Folder of ROI masks named like the cases."),
    engine: str = typer.Option(None, "--engine", help="onnx or torch (default: the plan's)."),
    dicom_output: str = typer.Option("seg", "--dicom-output", help="For DICOM input: seg (DICOM-SEG) or nifti."),
) -> None:
    """Write a mask per case in the input's format and geometry."""
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.segment.inference import SegmentationModel

    RunDirectory(run).require_finished()
    model = SegmentationModel.load(run, engine=engine)
    if dicom_output not in ("seg", "nifti"):
        from medlearn.errors import InputError

        raise InputError("--dicom-output", f"unknown value '{dicom_output}'", "use seg or nifti")
    written = model.predict_files(inputs, out, probabilities=probabilities, roi=roi, dicom_output=dicom_output)
    typer.echo(f"wrote {len(written)} file(s) to {out}")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="A finished run directory."),
    dataset: Path = typer.Argument(..., help="A labelled MSD dataset (held out from training)."),
    out: Path = typer.Option(None, "-o", "--out", help="Output folder (default: RUN/evaluation/<dataset>)."),
) -> None:
    """Dice, IoU, HD95, ASD per case (+ pooled AUC, Se, Sp, Acc for binary tasks) and a report."""
    from medlearn.engine.rundir import RunDirectory
    from medlearn.io import write_json
    from medlearn.tasks.segment.inference import SegmentationModel
    from medlearn.tasks.segment.report import write_segmentation_report

    RunDirectory(run).require_finished()
    model = SegmentationModel.load(run)
    result = model.evaluate_dataset(dataset)
    overlays = result.pop("overlays", [])
    target = out or Path(run) / "evaluation" / dataset.resolve().name
    write_segmentation_report(target / "report.html", f"Evaluation on {dataset.resolve().name}", model.plan, result,
                              overlays)
    write_json(target / "metrics.json", {"dataset": str(dataset), **result})
    typer.echo(f"mean: {json.dumps(result['mean'])}")
    if "pooled" in result:
        typer.echo(f"pooled: {json.dumps(result['pooled'])}")
    typer.echo(f"wrote {target / 'metrics.json'} and report.html")
