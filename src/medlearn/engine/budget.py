"""Time budgets: measure what this machine gives, before training, and say what the plan expects.

Defaults are tuned on one machine; a user's laptop may be half as fast. Before a new run trains, the
engine times a few optimisation steps of the plan's own network on one batch of the plan's size, with
the threads each member will have (:func:`measure_step_seconds`). With that, a task whose schedule is a
number of steps shrinks it to fit ``train.max_minutes`` (:meth:`medlearn.tasks.base.Task.fit_budget`);
a task that trains for its budget says how many of the steps its evidence needs the budget buys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: optimisation steps timed (the first, with one-off allocations, is discarded)
TIMED_STEPS = 3


@dataclass
class StepTiming:
    """What to time and what the plan asks of it.

    ``module``: builds the task's LightningModule (its ``training_step`` is timed with an AdamW step, as
    Lightning would run it, without the trainer's logging and batch hooks). ``batch``: one training
    batch. ``steps_wanted``: steps per member the plan's evidence asks for. ``fixed_steps``: True when the
    schedule is that many steps (epochs), False when
    training runs for its time budget.
    """

    module: Callable[[], Any]
    batch: Any
    steps_wanted: int
    fixed_steps: bool = True
    #: how much faster the real step is than the one timed (e.g. a compiled step timed eagerly, since
    #: compiling just to time would cost more than it measures)
    speedup: float = 1.0


def measure_step_seconds(module_factory: Callable[[], Any], batch: Any, threads: int,
                         steps: int = TIMED_STEPS) -> float:
    """Median seconds of one training step (forward, backward, optimiser step) with ``threads`` threads."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        module = module_factory()
        module.train()
        # outside a Trainer: no logging, and a plain optimiser (a scheduler needs the trainer's step count;
        # the optimiser step costs about the same whichever optimiser the plan uses)
        module.log = module.log_dict = lambda *_a, **_k: None
        optimiser = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
        times = []
        for i in range(steps + 1):
            started = time.perf_counter()
            optimiser.zero_grad(set_to_none=True)
            loss = module.training_step(batch, i)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            loss.backward()
            optimiser.step()
            times.append(time.perf_counter() - started)
        return float(sorted(times[1:])[len(times[1:]) // 2])
    finally:
        torch.set_num_threads(saved)


def budget_summary(seconds_per_step: float, timing: StepTiming, rounds: int, budget_minutes: float | None
                   ) -> dict[str, Any]:
    """Expected minutes of the plan, and (time-bounded training) the steps its budget buys per member."""
    expected = rounds * timing.steps_wanted * seconds_per_step / 60
    out: dict[str, Any] = {"seconds_per_step": round(seconds_per_step, 4), "steps_wanted": timing.steps_wanted,
                           "expected_minutes": round(expected, 2)}
    if budget_minutes and not timing.fixed_steps:
        affordable = int(budget_minutes * 60 / rounds / max(seconds_per_step, 1e-9))
        out["steps_in_budget"] = affordable
        out["expected_minutes"] = round(float(budget_minutes), 2)
    return out
