"""Lightning callbacks: atomic checkpoints (a crash mid-save never corrupts ``last.ckpt``) and a stop
on a non-finite training loss (a diverged run ends at once with one line, not after its whole budget)."""

from __future__ import annotations

import math
import os
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

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
