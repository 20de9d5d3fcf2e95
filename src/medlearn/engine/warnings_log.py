"""Library warnings (scikit-learn, MONAI, ITK, Lightning) go to ``RUN/logs/warnings.log``, not the
terminal, where they would break the progress bar between its refreshes; the run says how many there were."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def warnings_to(path: Path) -> Iterator[None]:
    """Append every Python warning shown inside the block to ``path`` (one line each)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{category.__name__}: {str(message).splitlines()[0] if str(message) else ''} "
                         f"({Path(filename).name}:{lineno})\n")
        except OSError:  # the log is a convenience: never fail a training over it
            original(message, category, filename, lineno, file, line)

    path.parent.mkdir(parents=True, exist_ok=True)
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def count_lines(path: Path) -> int:
    try:
        return sum(1 for _ in open(path, encoding="utf-8"))
    except OSError:
        return 0
