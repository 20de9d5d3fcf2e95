"""``medlearn segment train|predict|evaluate|plan-fields`` on the MSD (nnU-Net raw) layout."""

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

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Image segmentation (2D/3D, self-configuring U-Net family).")


@train_command(app, "segment")
def train(dataset: Path = typer.Argument(..., help="MSD / nnU-Net raw dataset folder (dataset.json, imagesTr/, "
                                                   "labelsTr/).")) -> TaskArgs:
    """Plan from the dataset's fingerprint, print the plan, train, pick post-processing on validation."""
    return dataset, {}


@predict_command(app, "segment", out_help="Output folder for the masks.")
def predict(model, out: Path,
            inputs: list[Path] = typer.Argument(..., help="Images, folders of images (CASE_0000.ext ...), DICOM "
                                                          "series (folder or zip) or an MSD dataset."),
            probabilities: bool = typer.Option(False, "--probabilities", help="Also write probability maps."),
            roi: Path = typer.Option(None, "--roi", help="Folder of ROI masks named like the cases."),
            engine: str = typer.Option(None, "--engine", help="onnx or torch (default: the plan's)."),
            dicom_output: str = typer.Option("seg", "--dicom-output", help="For DICOM input: seg (DICOM-SEG) or "
                                                                           "nifti."),
            series: str = typer.Option(None, "--series", help="DICOM folder with several series: which one (index "
                                                              "or UID)."),
            each_series: bool = typer.Option(False, "--each-series", help="DICOM folder with several series: "
                                                                          "predict each.")) -> list[Path]:
    """Write a mask per case in the input's format and geometry (2D rasters as lossless PNG, DICOM as DICOM-SEG)."""
    if engine:
        model.use_engine(engine)
    return model.predict_files(inputs, out, probabilities=probabilities, roi=roi, dicom_output=dicom_output,
                               series=series, each_series=each_series, echo=console.print)


@evaluate_command(app, "segment")
def evaluate() -> dict:
    """Dice and HD95 per class with 95% CIs over cases, IoU, ASD (+ pooled AUC, F1, Se, Sp for binary tasks)."""
    return {}


plan_fields_command(app, "segment")
