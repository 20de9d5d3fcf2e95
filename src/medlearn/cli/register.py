"""``medlearn register train|predict|evaluate|plan-fields``: pairwise registration (Learn2Reg, CSV, atlas)."""

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
                  help="Image registration (2D/3D pairs; learned VoxelMorph family, SimpleITK references).")

METHOD_HELP = ("network (the run's), classical (the plan's classical.method), bspline (SimpleITK affine + "
               "B-spline), affine, demons")


@train_command(app, "register")
def train(dataset: Path = typer.Argument(..., help="Learn2Reg dataset (folder or its *_dataset.json), a CSV of pairs "
                                                   "(fixed,moving[,fixed_label,moving_label,split,...]), or with "
                                                   "--atlas a folder / CSV of images."),
          atlas: Path = typer.Option(None, "--atlas", help="Atlas mode: the fixed image every image is registered "
                                                           "to."),
          atlas_label: Path = typer.Option(None, "--atlas-label", help="The atlas's label map (atlas mode).")
          ) -> TaskArgs:
    """Plan from the pairs' fingerprint, print the plan and the expected time, train, evaluate the validation
    pairs at full resolution (network.name=classical: no network, SimpleITK registers)."""
    return dataset, {"atlas": str(atlas) if atlas else None, "atlas_label": str(atlas_label) if atlas_label else None}


@predict_command(app, "register", out_help="Output folder (one pair: its files; several: a folder per pair).")
def predict(model, out: Path,
            inputs: list[Path] = typer.Argument(..., help="FIXED MOVING images, a CSV of pairs, or a Learn2Reg "
                                                          "dataset (registration_test, else registration_val)."),
            method: str = typer.Option(None, "--method", help=METHOD_HELP),
            refine: int = typer.Option(None, "--refine", help="Instance optimisation: N gradient steps on each "
                                                              "pair's field from the network's (default: the "
                                                              "plan's inference.refine_steps; 0: off)."),
            moving_label: Path = typer.Option(None, "--moving-label", help="Label map of MOVING to warp onto the "
                                                                           "fixed image (nearest neighbour)."),
            fixed_label: Path = typer.Option(None, "--fixed-label", help="Label map of FIXED (checked with the "
                                                                         "moving one)."),
            split: str = typer.Option(None, "--split", help="Learn2Reg: train, val or test.")) -> list[Path]:
    """Write warped<ext>, warped_label<ext>, displacement.nii.gz (ITK/ANTs convention) and jacobian.nii.gz with
    the fixed image's geometry."""
    return model.predict_files(inputs, out, method=method, refine=refine, fixed_label=fixed_label,
                               moving_label=moving_label, split=split, echo=console.print)


@evaluate_command(app, "register", data_help="Pairs with labels, keypoints or known fields (a layout `train` reads).")
def evaluate(atlas: Path = typer.Option(None, "--atlas", help="Atlas mode: the fixed image."),
             atlas_label: Path = typer.Option(None, "--atlas-label", help="The atlas's label map."),
             method: str = typer.Option(None, "--method", help=METHOD_HELP),
             refine: int = typer.Option(None, "--refine", help="Instance-optimisation steps (default: the plan's)."),
             split: str = typer.Option(None, "--split", help="Learn2Reg: which pairs (default: registration_val).")
             ) -> dict:
    """Dice/HD95 per structure, folding %, SDlogJ, TRE, NCC/MI before and after, seconds per pair, 95% CIs over
    pairs."""
    return {"atlas": str(atlas) if atlas else None, "atlas_label": str(atlas_label) if atlas_label else None,
            "method": method, "refine": refine, "split": split}


plan_fields_command(app, "register")
