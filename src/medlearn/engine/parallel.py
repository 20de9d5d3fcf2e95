"""Independent trainings (ensemble members) side by side, one process per group of CPU cores.

Small CPU models use two cores poorly: on this project's 2-core machine one DRIVE U-Net made 8.1 steps/s
on two threads, two U-Nets side by side on one thread each 12.4 steps/s together (6.2 each, as many as
one model alone on one core), so a second ensemble member costs no extra wall time. Processes are
*spawned* (not forked): OpenMP and Lightning are not safe to fork after torch has started threads.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
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

    def describe(self) -> str:
        """The line a training prints before starting its members."""
        return (f"Training {self.tasks} ensemble members, {self.workers} at a time with {self.threads} "
                "thread(s) each")

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


def _exit_with_parent() -> None:
    """End this worker as soon as its parent process is gone.

    Ctrl-C reaches the whole process group, but a parent stopped by SIGTERM or SIGKILL (a job
    scheduler, ``kill``) runs no clean-up: its workers would otherwise train on, orphaned, for the
    rest of their budget. Each member checkpoints, so ``--resume`` picks up what they had done.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="medlearn-parent-watch", daemon=True).start()


def _worker(fn: Callable[..., Any], kwargs: dict[str, Any], threads: int, send: Connection) -> None:
    """Entry point of one worker process: set its threads, run ``fn``, send back the result or the failure."""
    from medlearn.engine.seed import configure_cpu_threads

    _exit_with_parent()
    configure_cpu_threads(threads)
    try:
        result = fn(**kwargs)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which re-raises
        result = _Failure(type(exc).__name__, str(exc), traceback.format_exc())
    send.send(result)
    send.close()


def _death_hint(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by signal {-exitcode}, perhaps for memory"
    # the usual cause: each spawned worker re-imports the caller's script, which then trains again
    return ("see its error output above; a script that trains with medlearn must do so under "
            "`if __name__ == \"__main__\":`")


class WorkerError(RuntimeError):
    """A parallel training failed; the message carries the worker's exception and traceback."""


def _reraise(failure: _Failure) -> None:
    """Raise in the parent what the worker raised: Ctrl-C stays an interruption, bad input stays exit 2."""
    from medlearn.errors import InputError

    if failure.kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if failure.kind in ("InputError", "RunExistsError", "TrainingDiverged"):
        raise InputError(None, failure.message)
    raise WorkerError(f"{failure.kind}: {failure.message}\n{failure.trace}")


def run_parallel(fn: Callable[..., Any], kwargs_list: list[dict[str, Any]], layout: ParallelLayout) -> list[Any]:
    """``[fn(**kw) for kw in kwargs_list]``, ``layout.workers`` at a time in spawned processes.

    ``fn`` must be a module-level function, its arguments picklable and its result free of tensors (a
    tensor sent back is shared through the sending process, which exits: save weights to a file instead).
    With one worker everything runs in this process (no spawn cost, plain tracebacks). If one call fails,
    or its process dies (e.g. killed for memory), the others are stopped and the error raised
    (:class:`WorkerError`, or the worker's bad input / interruption as such); each call is expected to
    checkpoint, so a rerun resumes.
    """
    if layout.workers <= 1:
        return [fn(**kw) for kw in kwargs_list]
    ctx = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(kwargs_list)
    waiting = list(range(len(kwargs_list)))
    running: dict[int, tuple[Any, Connection]] = {}  # task index -> (process, receiving end)
    try:
        while waiting or running:
            while waiting and len(running) < layout.workers:
                i = waiting.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                # not a daemon: a training may start processes of its own (compile workers, data loaders)
                process = ctx.Process(target=_worker, args=(fn, kwargs_list[i], layout.threads, send))
                process.start()
                send.close()  # the child holds the only sending end: its death closes the pipe
                running[i] = (process, receive)
            wait([r for _, r in running.values()] + [p.sentinel for p, _ in running.values()])
            for i, (process, receive) in list(running.items()):
                finished = receive.poll() or not process.is_alive()  # an answer, or a death without one
                if not finished:
                    continue
                try:
                    result = receive.recv()
                except EOFError:  # died without an answer: killed (out of memory?) or crashed
                    process.join()
                    raise WorkerError(f"task {i} died with exit code {process.exitcode} "
                                      f"({_death_hint(process.exitcode)})") from None
                process.join()
                del running[i]
                if isinstance(result, _Failure):
                    _reraise(result)
                results[i] = result
    except BaseException:
        for process, _ in running.values():
            process.terminate()
        raise
    return results
