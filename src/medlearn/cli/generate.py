"""``medlearn generate``: molecule generation; the commands live in :mod:`medlearn.molgen.cli`."""

from medlearn.molgen.cli import app

__all__ = ["app"]
