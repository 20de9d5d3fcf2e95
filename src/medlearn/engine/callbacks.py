"""Lightning callbacks: atomic checkpoints (a crash mid-save never corrupts ``last.ckpt``) and a stop
on a non-finite training loss (a diverged run ends at once with one line, not after its whole budget), and a
time budget that is kept (training stops before it, closing validation included)."""

from __future__ import annotations

import math
import os
import time
from datetime import timedelta
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.trainer.states import RunningStage

from medlearn.errors import InputError


class TrainingDiverged(InputError):
    """The training loss became NaN or infinite: the plan's settings (learning rate, precision) do not fit
    this data. Exit code 2 like bad input, since a setting is what must change."""


class StopOnNonFiniteLoss(Callback):
    """Raise :class:`TrainingDiverged` at the first step whose training loss is NaN or infinite.

    Without it a diverged run trains on to the end of its budget and fails later, in evaluation,
    with a library traceback. The checkpoints written before the divergence are left as they were.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(trainer.default_root_dir,
                                       f"training diverged: the loss became {value} at step {trainer.global_step}",
                                       "lower train.lr (or use float32 precision) and train again")


class AtomicModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that writes to a temporary file and renames it into place.

    It also refreshes ``last.ckpt`` at every save point: Lightning (2.6) writes ``last`` only when the
    monitored metric improved, so ``--resume`` after a plateau would restart from the last best.
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):  # skips if saved at this step
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        try:
            trainer.save_checkpoint(tmp, self.save_weights_only)
            if trainer.is_global_zero:
                os.replace(tmp, filepath)
        except OSError:  # disk full, read-only folder: leave no half-written .tmp behind
            if trainer.is_global_zero and os.path.exists(tmp):
                os.remove(tmp)
            raise
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)


class BudgetTimer(Timer):
    """Lightning's ``Timer`` that stops *before* the budget, not after it.

    ``Timer`` stops at the first step that ends past ``duration``; Lightning then runs the closing
    validation and checkpoint writes, so a run overshoots by a step plus a validation (a 30-minute 3D
    registration run ended at 30.04 min). This one's clock starts when it is made (with the trainer, so the
    set-up of ``fit`` and a resume's checkpoint loading count too), and it stops at the last step after
    which one more step *and* the closing work would no longer fit. The closing work is measured: the time
    a step interval that held a validation took beyond a plain step. Before the first validation it is
    estimated as one training step per validation batch (a forward pass is cheaper than a step, so this
    errs towards stopping early), so a budget shorter than an epoch holds too. A resumed run continues
    the elapsed time saved in its checkpoint.
    """

    #: weight of the newest step time in the running estimate
    SMOOTHING = 0.2

    def __init__(self, duration: timedelta, verbose: bool = False) -> None:
        super().__init__(duration=duration, interval="step", verbose=verbose)
        self._mark: float | None = None
        self._validated = False
        self._intervals = 0
        self._created = time.monotonic()
        self.step_seconds = 0.0
        self.closing_seconds = 0.0
        self._closing_measured = False

    def on_fit_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._start_time[RunningStage.TRAINING] = self._created
        self._mark = time.monotonic()
        super().on_fit_start(trainer, *args, **kwargs)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the clock runs from the trainer's creation: the set-up is part of the budget

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._validated = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.monotonic()
        interval = now - (self._mark if self._mark is not None else now)
        self._mark = now
        self._intervals += 1
        if self._intervals == 1:  # set-up and the first step's one-off allocations: counted, not a step's cost
            self._validated = False
        elif self._validated:  # this interval held a validation (and the checkpoint writes after it)
            self.closing_seconds = max(0.0, interval - self.step_seconds)
            self._closing_measured = True
            self._validated = False
        elif self.step_seconds == 0.0:
            self.step_seconds = interval
        else:
            self.step_seconds += self.SMOOTHING * (interval - self.step_seconds)
        self._check_time_remaining(trainer, scheduled=_validates_after(trainer, batch_idx))

    def _check_time_remaining(self, trainer: pl.Trainer, scheduled: bool = False) -> None:
        # going on costs the next step and the validation that closes any stop, plus the validation due
        # right after this batch (it runs whether or not we stop, so stopping now costs only it)
        assert self._duration is not None
        closing = self.closing_seconds if self._closing_measured else self.step_seconds * _validation_batches(trainer)
        needed = self.time_elapsed() + self.step_seconds + closing * (2 if scheduled else 1)
        should_stop = bool(trainer.strategy.broadcast(needed >= self._duration))
        trainer.should_stop = trainer.should_stop or should_stop


def _validation_batches(trainer: pl.Trainer) -> int:
    """How many batches one validation runs (0 when there is none or it cannot tell)."""
    try:
        return int(sum(n for n in trainer.num_val_batches if math.isfinite(n)))
    except (AttributeError, TypeError, ValueError):
        return 0


def _validates_after(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether Lightning runs a validation right after training batch ``batch_idx`` (batch- or epoch-based
    ``val_check_interval``, as Lightning 2.x decides it); True when it cannot tell (the cautious answer)."""
    try:
        every = trainer.val_check_batch
        if not sum(trainer.num_val_batches):
            return False
        if trainer.check_val_every_n_epoch is None:  # every `every` batches across epochs
            return (trainer.fit_loop.epoch_loop.total_batch_idx + 1) % int(every) == 0
        if (trainer.current_epoch + 1) % trainer.check_val_every_n_epoch:
            return False
        return (batch_idx + 1) % int(every) == 0 or batch_idx + 1 >= trainer.num_training_batches
    except (AttributeError, TypeError, ValueError, OverflowError):
        return True
