"""``medlearn`` entry point: sub-commands per task, one-line errors with exit code 2.

Every registered task (:data:`medlearn.tasks.TASKS`) has a ``medlearn.cli.<name>`` module exposing a
Typer ``app``, mounted as ``medlearn <name>``; so are the cross-cutting groups (``data``, ``serve``,
``export``). Bad input (``InputError``) prints ``error: <file>: <problem> -- <what to do>`` to stderr and
exits 2; so does a failed write (disk full, read-only folder), naming the path. ``--debug`` (anywhere on
the command line) shows the traceback instead.
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
from medlearn.tasks import TASKS  # noqa: E402

#: cross-cutting command groups besides the tasks (mounted when their module exists)
GROUPS = {
    "data": "Inspect, check, import and de-identify datasets.",
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


def _help(name: str) -> str:
    module = importlib.import_module(f"medlearn.cli.{name}")
    return (module.app.info.help or "").split("\n")[0]


for _name in TASKS:
    app.add_typer(importlib.import_module(f"medlearn.cli.{_name}").app, name=_name, help=_help(_name))
for _name, _text in GROUPS.items():
    if importlib.util.find_spec(f"medlearn.cli.{_name}") is not None:
        app.add_typer(importlib.import_module(f"medlearn.cli.{_name}").app, name=_name, help=_text)
for _name in ("demo", "export", "serve"):
    if importlib.util.find_spec(f"medlearn.cli.{_name}") is not None:
        importlib.import_module(f"medlearn.cli.{_name}").register(app)


def _typer_click_exceptions() -> Any:
    """Typer >= 0.20 raises its vendored click's exceptions, older ones the click package's."""
    try:
        import typer._click.exceptions as vendored
    except ImportError:
        return None
    return vendored


INTERRUPTED = "interrupted: rerun with --resume to continue"
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
            if code == 130:  # Typer turns Ctrl-C (KeyboardInterrupt) into a returned 130, silently
                typer.echo(INTERRUPTED, err=True)
            sys.exit(code)
    except InputError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # disk full, read-only folder, permission: name the path, no traceback
        if debug or exc.filename is None:
            raise
        typer.echo(f"error: {exc.filename}: cannot write or read ({exc.strerror or exc}) -- free space or "
                   "choose a writable folder", err=True)
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
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
