"""``medlearn data inspect|check|import-pairs``."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import console, print_json

app = typer.Typer(no_args_is_help=True)


@app.command()
def inspect(path: Path = typer.Argument(..., help="Dataset: .npz, .csv, class folders or an MSD folder."),
            label: list[str] = typer.Option(None, "--label", help="Label column(s) of a CSV table.")) -> None:
    """Print the dataset fingerprint: counts, shapes, spacing, intensities, class balance."""
    from medlearn.data import msd

    if msd.is_msd_dataset(path):
        print_json(msd.fingerprint_msd_dataset(path))
        return
    from medlearn.data.classification import load_classification_data
    from medlearn.data.fingerprint import fingerprint_classification

    print_json(fingerprint_classification(load_classification_data(path, label_columns=label or None)))


@app.command()
def check(path: Path = typer.Argument(..., help="Dataset to check."),
          label: list[str] = typer.Option(None, "--label", help="Label column(s) of a CSV table.")) -> None:
    """Report every problem found; exit code 2 if any is an error."""
    from medlearn.data.check import check_dataset

    problems = check_dataset(path, label or None)
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(f"[{style}]{p.severity}[/{style}] {p.source}: {p.problem}" + (f" -- {p.fix}" if p.fix else ""),
                      markup=True, soft_wrap=True)
    errors = sum(p.severity == "error" for p in problems)
    console.print(f"{errors} error(s), {len(problems) - errors} warning(s) in {path}")
    if errors:
        raise typer.Exit(2)


@app.command("import-pairs")
def import_pairs(images: Path = typer.Option(..., "--images", help="Folder of images."),
                 masks: Path = typer.Option(..., "--masks", help="Folder of masks (matched by case number or stem)."),
                 roi: Path = typer.Option(None, "--roi", help="Optional folder of region-of-interest masks."),
                 out: Path = typer.Option(..., "-o", "--out", help="New MSD / nnU-Net raw dataset folder.")) -> None:
    """Build the MSD / nnU-Net raw layout (dataset.json, imagesTr/, labelsTr/) from loose folders."""
    from medlearn.data import msd

    path = msd.import_pairs(images, masks, out, roi=roi)
    console.print(f"wrote {path}")


@app.command()
def download(name: str = typer.Argument(..., help="Registered dataset name (see `medlearn data sources`)."),
             out: Path = typer.Option(Path("."), "-o", "--out", help="Folder to save into.")) -> None:
    """Download a public dataset from its official source and verify its checksum."""
    from medlearn.data.registry import download as fetch

    console.print(f"wrote {fetch(name, out)}")


@app.command()
def sources() -> None:
    """List the registered public datasets with their official URLs and licences."""
    from medlearn.data.registry import REGISTRY

    for s in REGISTRY.values():
        console.print(f"{s.name}: {s.url} ({s.license}; {s.citation})", soft_wrap=True)


@app.command()
def deidentify(source: Path = typer.Argument(..., help="A DICOM file or a folder of DICOM files (searched "
                                                      "recursively)."),
               out: Path = typer.Option(..., "-o", "--out", help="New (or empty) output folder."),
               keep_burned_in: bool = typer.Option(False, "--keep-burned-in",
                                                   help="Also write images that may show burned-in text "
                                                        "(BurnedInAnnotation YES, ultrasound, secondary capture)."),
               mapping: Path = typer.Option(None, "--mapping", help="Write original -> new identifiers to this "
                                                                    "JSON (kept apart from the images)."),
               date_shift: str = typer.Option(None, "--date-shift", help="Days to shift every date by, or 'remove' "
                                                                          "(default: one random offset per run)."),
               seed: int = typer.Option(None, "--seed", help="Make UIDs and the date offset reproducible.")) -> None:
    """De-identify DICOM (PS3.15 Basic Application Level Confidentiality Profile): identifiers removed or
    replaced, private tags removed, UIDs remapped and dates shifted consistently across series and studies,
    geometry kept; images that may carry burned-in text are refused unless --keep-burned-in."""
    from medlearn.data.deid import deidentify_folder
    from medlearn.errors import InputError

    shift: int | str | None = None
    if date_shift is not None:
        if date_shift != "remove":
            try:
                shift = int(date_shift)
            except ValueError:
                raise InputError("--date-shift", f"'{date_shift}' is not a number of days", "or use 'remove'") from None
        else:
            shift = "remove"
    report = deidentify_folder(source, out, keep_burned_in=keep_burned_in, mapping_file=mapping,
                               date_shift_days=shift, seed=seed)
    for path, reason in report.refused:
        console.print(f"refused {path.name}: {reason}", markup=False)
    console.print(f"{out}: {report.summary()}", markup=False)
    if not report.written:
        raise typer.Exit(2)
