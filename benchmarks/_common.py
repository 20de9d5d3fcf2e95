"""Helpers shared by the benchmark scripts: data root, CPU settings, result files."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spin-waiting collapses contended throughput

import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def data_root() -> Path:
    root = Path(os.environ.get("MEDLEARN_DATA", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        raise SystemExit(f"real data not found at {root}: set MEDLEARN_DATA")
    return root


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def environment() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_1min_at_end": load_average(), "matmul_gflops_2_threads": matmul_gflops()}


def matmul_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """This machine's 2-thread float32 matmul speed (GFLOP/s): step counts of time-budgeted runs on different
    days are comparable only through it (the issue reports 116 on a slow machine vs ~275 on ours)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm-up
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            n += 1
        return round(2 * size**3 * n / (time.perf_counter() - started) / 1e9, 1)
    finally:
        torch.set_num_threads(saved)


def write_results(name: str, payload: dict[str, Any], markdown: str) -> None:
    """``results/<name>.json`` and ``results/<name>.md`` (the README table is built from the .md files)."""
    from medlearn.io import write_json, write_text

    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", payload)
    write_text(RESULTS / f"{name}.md", markdown.rstrip() + "\n")


def members_text(training: dict[str, Any]) -> str:
    """An ensemble's ``metrics.json["training"]`` as a phrase ("" for a single model), e.g.
    "2 ensemble members ([11169, 11263] steps), 2 side by side, one process each"."""
    if training.get("members", 1) <= 1:
        return ""
    return (f"{training['members']} ensemble members ({training['steps_per_member']} steps), "
            f"{training['members_side_by_side']} side by side, one process each")


def value_text(entry: Any, fmt: str = "{:.3f}") -> str:
    """A ``{"value", "ci95"}`` metric as a table cell: "0.895 [0.890, 0.899]", the value alone when the
    CI was not estimable, "—" when there is no value."""
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "—"
    ci = entry.get("ci95")
    return fmt.format(entry["value"]) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


def ci_footnote(n_units: int, unit: str = "test pairs", then: str = "the per-pair values are in the JSON") -> str:
    """The sentence under a table whose CI column is empty because there are too few units to
    bootstrap ("" when there are enough), so an empty column is explained rather than silent;
    ``then`` ends it (where the values behind the table are)."""
    from medlearn.evaluation.bootstrap import MIN_CI_UNITS

    if n_units >= MIN_CI_UNITS:
        return ""
    return (f"No 95% CIs: {n_units} {unit}, and a bootstrap CI needs at least {MIN_CI_UNITS} "
            f"(`medlearn.evaluation.bootstrap.MIN_CI_UNITS`){'; ' + then if then else ''}.")
