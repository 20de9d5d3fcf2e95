"""One error type for bad input: the CLI turns it into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input (a file, a table, an option).

    The message always names the offending file (or option), the problem and, when known, what to do.
    Raise it instead of letting a library traceback escape to the user.
    """

    def __init__(self, source: str | Path | None, problem: str, hint: str | None = None) -> None:
        self.source = str(source) if source is not None else None
        self.problem = problem
        self.hint = hint
        parts = [f"{self.source}: {problem}" if self.source else problem]
        if hint:
            parts.append(hint)
        super().__init__(" -- ".join(parts))


class RunExistsError(InputError):
    """A finished run directory would be overwritten without --force."""
