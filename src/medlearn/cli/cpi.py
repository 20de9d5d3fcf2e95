"""``medlearn cpi``: compound-protein interaction (binding affinity); the commands live in :mod:`medlearn.cpi.cli`."""

from medlearn.cpi.cli import app

__all__ = ["app"]
