"""Shared CLI helpers: console, JSON printing."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(stderr=False, highlight=False)


def print_json(obj: Any) -> None:
    from medlearn.io.atomic import _jsonable

    console.print_json(json.dumps(_jsonable(obj)))
