"""Independent trainings (ensemble members) side by side, one process per group of CPU cores.

Small CPU models use two cores poorly: a 2D U-Net step on 2 threads is well under twice as fast as on
one. Two members trained in parallel, one core each, get about twice the steps per wall-clock minute
that one model on both cores gets. Processes are *spawned* (not forked): OpenMP and Lightning are not
safe to fork after torch has started threads.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, so ``taskset`` is respected)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class ParallelLayout:
    """How ``tasks`` trainings share the cores: ``workers`` at a time, ``threads`` each."""

    tasks: int
    workers: int
    threads: int

    @property
    def rounds(self) -> int:
        """Trainings one worker runs one after another (each gets 1/rounds of a time budget)."""
        return -(-self.tasks // self.workers)


def plan_layout(tasks: int, cores: int | None = None) -> ParallelLayout:
    """One worker per task while cores last; the cores are split evenly between the workers."""
    cores = cores or available_cores()
    workers = max(1, min(tasks, cores))
    return ParallelLayout(tasks, workers, max(1, cores // workers))


def member_layout(members: int, devices: int | None = None, accelerator: str = "auto") -> ParallelLayout:
    """Ensemble members side by side on CPU cores; one after another on a GPU or with DDP devices."""
    from medlearn.engine.trainer import resolve_devices

    acc, n_devices, _ = resolve_devices(devices, accelerator)
    if acc != "cpu" or int(n_devices) > 1:
        return ParallelLayout(members, 1, 1)
    return plan_layout(members)


@dataclass
class _Failure:
    """An exception in a worker, carried back as text (custom exceptions do not always unpickle)."""

    kind: str
    message: str
    trace: str


def _init_worker(threads: int) -> None:
    from medlearn.engine.seed import configure_cpu_threads

    configure_cpu_threads(threads)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(**kwargs)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which re-raises
        return _Failure(type(exc).__name__, str(exc), traceback.format_exc())


class WorkerError(RuntimeError):
    """A parallel training failed; the message carries the worker's exception and traceback."""


def _reraise(failure: _Failure) -> None:
    """Raise in the parent what the worker raised: Ctrl-C stays an interruption, bad input stays exit 2."""
    from medlearn.errors import InputError

    if failure.kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if failure.kind in ("InputError", "RunExistsError"):
        raise InputError(None, failure.message)
    raise WorkerError(f"{failure.kind}: {failure.message}\n{failure.trace}")


def run_parallel(fn: Callable[..., Any], kwargs_list: list[dict[str, Any]], layout: ParallelLayout) -> list[Any]:
    """``[fn(**kw) for kw in kwargs_list]``, ``layout.workers`` at a time in spawned processes.

    ``fn`` must be a module-level function and its arguments picklable. With one worker everything runs
    in this process (no spawn cost, plain tracebacks). If one call fails the others are stopped and a
    :class:`WorkerError` is raised; each call is expected to checkpoint, so a rerun resumes.
    """
    if layout.workers <= 1:
        return [fn(**kw) for kw in kwargs_list]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(layout.workers, initializer=_init_worker, initargs=(layout.threads,), maxtasksperchild=1) as pool:
        pending = [pool.apply_async(_call, (fn, kw)) for kw in kwargs_list]
        results = []
        try:
            for job in pending:
                result = job.get()
                if isinstance(result, _Failure):
                    _reraise(result)
                results.append(result)
        except BaseException:
            pool.terminate()
            raise
        return results
