"""``medlearn demo``: train and evaluate on the bundled BreastMNIST and write the report."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from medlearn.cli.common import console, headline


def bundled_breastmnist() -> Path:
    """Path of the BreastMNIST ``.npz`` shipped in the package (CC BY 4.0, see ATTRIBUTION.md)."""
    return Path(str(resources.files("medlearn") / "resources" / "breastmnist.npz"))


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(out: Path = typer.Option(Path("runs/demo"), "-o", "--out", help="Run directory."),
             force: bool = typer.Option(False, "--force", help="Overwrite a finished demo run."),
             quiet: bool = typer.Option(False, "--quiet", help="No progress bar.")) -> None:
        """Train a classifier on bundled BreastMNIST (breast ultrasound), evaluate on its test split."""
        from medlearn.engine.workflow import train
        from medlearn.tasks import get_task
        from medlearn.tasks.base import TrainRequest

        data = bundled_breastmnist()
        console.print(f"medlearn demo: BreastMNIST ({data.name}, CC BY 4.0, MedMNIST v2) -> {out}")
        # One member of the default 5-member ensemble, with the members' recipe (final weights, flipped
        # views at prediction), keeps the demo well under 5 CPU minutes.
        members_recipe = ["train.ensemble=1", "train.checkpoint=final", "tta=true"]
        request = TrainRequest("classify", str(data), str(out), members_recipe, force=force, progress=not quiet)
        metrics = train(get_task("classify"), request, echo=console.print)
        headline("classify", metrics)
        console.print(f"report: {out / 'report.html'}")
