"""Trainings side by side in spawned processes: layout, results in order, errors carried back."""

from __future__ import annotations

import os

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
