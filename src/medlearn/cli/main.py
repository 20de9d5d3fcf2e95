"""``medlearn`` entry point: sub-commands per task, one-line errors with exit code 2.

Each ``medlearn.cli.<name>`` module exposes a Typer ``app``; it is mounted as ``medlearn <name>``.
Bad input (``InputError``) prints ``error: <file>: <problem> -- <what to do>`` to stderr and exits 2;
``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported anywhere

import click  # noqa: E402
import typer  # noqa: E402

from medlearn.errors import InputError  # noqa: E402

SUBCOMMANDS = {
    "data": "Inspect, check and import datasets.",
    "classify": "Image classification (2D/3D, per image and per patient).",
    "segment": "Image segmentation (2D/3D, self-configuring U-Net family).",
    "qsar": "QSAR: molecular property prediction from SMILES.",
    "generate": "Molecule generation (adversarial autoencoder, SMILES LSTM).",
    "cpi": "Compound-protein interaction (binding affinity).",
}

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="medlearn: deep learning on medical images and molecules.")



@app.callback()
def _root() -> None:
    """medlearn: deep learning on medical images and molecules."""


@app.command()
def version() -> None:
    """Print medlearn's version."""
    from medlearn import __version__

    typer.echo(__version__)


for _name, _help in SUBCOMMANDS.items():
    if importlib.util.find_spec(f"medlearn.cli.{_name}") is not None:
        app.add_typer(importlib.import_module(f"medlearn.cli.{_name}").app, name=_name, help=_help)

if importlib.util.find_spec("medlearn.cli.demo") is not None:
    importlib.import_module("medlearn.cli.demo").register(app)


def _typer_click_exceptions() -> Any:
    """Typer >= 0.20 raises its vendored click's exceptions, older ones the click package's."""
    try:
        import typer._click.exceptions as vendored
    except ImportError:
        return None
    return vendored


_VENDORED = _typer_click_exceptions()
_USAGE_ERRORS = (click.ClickException,) + ((_VENDORED.ClickException,) if _VENDORED else ())
_ABORTS = (click.exceptions.Abort, typer.Abort)
_EXITS = (click.exceptions.Exit, typer.Exit)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        code = app(args=argv, prog_name="medlearn", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(code) is returned, not raised, without standalone mode
            sys.exit(code)
    except InputError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except _ABORTS:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except _USAGE_ERRORS as exc:  # unknown option, missing argument, bad value: usage line + message
        exc.show()
        sys.exit(2)
    except _EXITS as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun with --resume to continue", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
