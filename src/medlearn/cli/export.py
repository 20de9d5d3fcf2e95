"""``medlearn export RUN -o FILE``: a trained run as one file (ONNX: the pipeline ONNX can express)."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli.common import console


def register(app: typer.Typer) -> None:
    @app.command()
    def export(run: Path = typer.Argument(..., help="A finished run directory (any task)."),
               out: Path = typer.Option(..., "-o", "--out", help="Output file (e.g. model.onnx)."),
               fmt: str = typer.Option("onnx", "--format", help="onnx")) -> None:
        """Export a run's whole pipeline as one ONNX graph with its metadata (labels, input size, plan);
        docs/export.md shows how to run it with onnxruntime alone."""
        import medlearn
        from medlearn.errors import InputError

        if fmt != "onnx":
            raise InputError("--format", f"unknown format '{fmt}'", "use onnx")
        model = medlearn.load_run(run)
        metadata = model.export_onnx(out)
        console.print(f"wrote {out} ({model.task_name}; metadata: {', '.join(sorted(metadata))})", markup=False)
