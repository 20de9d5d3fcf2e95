"""The problem list that ``medlearn data check`` prints, shared by every dataset layout."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: where, what, and how to fix it.

    ``severity`` is ``"error"`` (training would fail or be wrong) or ``"warning"`` (suspicious).
    """

    source: str
    problem: str
    fix: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        text = f"[{self.severity}] {self.source}: {self.problem}"
        return f"{text} -- {self.fix}" if self.fix else text
