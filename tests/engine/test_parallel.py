"""Trainings side by side in spawned processes: layout, results in order, errors carried back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medlearn.engine.parallel import ParallelLayout, WorkerError, plan_layout, run_parallel
from medlearn.errors import InputError


def _square_and_threads(x: int) -> tuple[int, int]:
    import torch

    return x * x, torch.get_num_threads()


def _fail(kind: str) -> None:
    if kind == "ok":
        return
    if kind == "input":
        raise InputError("cases.csv", "bad row")
    if kind == "die":
        os._exit(9)  # as if killed for memory: no answer, no exception
    raise ZeroDivisionError("boom")


def _sleep_after_writing_pid(folder: str) -> None:
    (Path(folder) / f"{os.getpid()}.pid").write_text("")
    time.sleep(120)


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped by its new parent, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_layout_splits_cores_between_workers():
    assert plan_layout(2, cores=2) == ParallelLayout(2, 2, 1)
    assert plan_layout(2, cores=8) == ParallelLayout(2, 2, 4)
    assert plan_layout(5, cores=2).rounds == 3 and plan_layout(1, cores=4) == ParallelLayout(1, 1, 4)


def test_results_come_back_in_order_from_worker_processes_with_their_thread_count():
    results = run_parallel(_square_and_threads, [{"x": 2}, {"x": 3}, {"x": 4}], ParallelLayout(3, 2, 1))
    assert [r[0] for r in results] == [4, 9, 16] and all(r[1] == 1 for r in results)
    # one worker: runs here, in this process
    assert run_parallel(os.getpid, [{}], ParallelLayout(1, 1, 1)) == [os.getpid()]


def test_a_failing_worker_is_reported_and_bad_input_stays_bad_input():
    with pytest.raises(WorkerError, match="ZeroDivisionError: boom"):
        run_parallel(_fail, [{"kind": "other"}, {"kind": "other"}], ParallelLayout(2, 2, 1))
    with pytest.raises(InputError, match="bad row"):
        run_parallel(_fail, [{"kind": "ok"}, {"kind": "input"}], ParallelLayout(2, 2, 1))
    with pytest.raises(WorkerError, match="task 1 died with exit code 9"):
        run_parallel(_fail, [{"kind": "ok"}, {"kind": "die"}, {"kind": "ok"}], ParallelLayout(3, 2, 1))


def test_workers_end_when_their_parent_is_killed(tmp_path):
    """A parent stopped by SIGKILL (no clean-up runs) must not leave its workers training on."""
    tasks = [{"folder": str(tmp_path)}] * 2
    script = ("from tests.engine.test_parallel import _sleep_after_writing_pid\n"
              "from medlearn.engine.parallel import ParallelLayout, run_parallel\n"
              "if __name__ == '__main__':\n"
              f"    run_parallel(_sleep_after_writing_pid, {tasks!r}, ParallelLayout(2, 2, 1))\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    orphans = [pid for pid in workers if _alive(pid)]
    for pid in orphans:  # do not leave them sleeping if the watch failed
        os.kill(pid, signal.SIGKILL)
    assert not orphans
