"""``medlearn serve RUN [RUN ...]``: trained runs behind a local web service and web page."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the top-level ``serve`` command to ``app``."""

    @app.command("serve")
    def serve(runs: list[Path] = typer.Argument(..., help="Finished run directories to serve (named after their "
                                                          "folders)."),
              host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs "
                                                                    "a token."),
              port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
              token: str = typer.Option(None, "--token", envvar="MEDLEARN_TOKEN",
                                        help="Bearer token required on every request (prefer the MEDLEARN_TOKEN "
                                             "variable: a command line is visible to other users)."),
              max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", help="Largest request body, in MB.")
              ) -> None:
        """Serve trained models: a JSON API (/docs) and a web page with a slice viewer at /."""
        from medlearn.serve.server import serve as run_service

        run_service(runs, host=host, port=port, token=token, max_upload_mb=max_upload_mb, echo=typer.echo)
