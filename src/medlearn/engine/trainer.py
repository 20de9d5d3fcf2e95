"""Build the Lightning ``Trainer`` every task uses: CPU by default, GPU / multi-device DDP on request.

Research code lives in each task's ``LightningModule``; this module holds the engineering: device
choice, early stopping on a validation metric, best + last checkpoints in ``RUN/checkpoints/``
(``last.ckpt`` is what ``--resume`` continues from), CSV logs in ``RUN/logs/metrics.csv`` and a
progress bar.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from medlearn.engine.callbacks import AtomicModelCheckpoint, BudgetTimer, StopOnNonFiniteLoss
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError

BEST_CHECKPOINT = "best.ckpt"


def resolve_devices(devices: int | None, accelerator: str = "auto") -> tuple[str, int | str, str]:
    """Return (accelerator, devices, strategy). CPU unless a GPU exists and ``accelerator`` allows it."""
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise InputError("--accelerator", "gpu requested but no CUDA device is available", "use --accelerator cpu")
    n = devices or 1
    strategy = "ddp" if n > 1 else "auto"
    return accelerator, n, strategy


def warmup_ema(max_decay: float):
    """Foreach EMA update for :class:`torch.optim.swa_utils.AveragedModel` with a warm-up.

    The decay at update ``n`` is ``min(max_decay, (1 + n) / (10 + n))`` (the TensorFlow
    ``ExponentialMovingAverage(num_updates=...)`` rule): early on the average follows the weights
    closely, so a short run's average is never dominated by the random initialisation, and the
    horizon grows with the run (about the last 10% of the updates) until ``max_decay`` caps it.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        decay = min(max_decay, (1 + n) / (10 + n))
        floating = [(a, c) for a, c in zip(averaged, current, strict=True) if torch.is_floating_point(a)]
        if floating:
            torch._foreach_lerp_([a for a, _ in floating], [c for _, c in floating], 1 - decay)
        for a, c in zip(averaged, current, strict=True):  # integer buffers (e.g. BatchNorm counters): copy
            if not torch.is_floating_point(a):
                a.copy_(c)

    return update


def ema_callbacks(decay: float | None) -> list[Callback]:
    """EMA weight averaging (Polyak & Juditsky 1992) with :func:`warmup_ema`, updated every step,
    when ``decay`` is set; else none.

    Validation then scores the averaged weights, checkpoints store them as ``state_dict`` (and the
    average itself, so ``--resume`` continues it), and training ends with them in the model.
    """
    if not decay:
        return []
    from lightning.pytorch.callbacks import WeightAveraging

    return [WeightAveraging(multi_avg_fn=warmup_ema(decay))]


def build_trainer(
    run_dir: RunDirectory,
    max_epochs: int,
    monitor: str,
    mode: str = "max",
    patience: int | None = 10,
    devices: int | None = None,
    accelerator: str = "auto",
    max_time_minutes: float | None = None,
    val_check_interval: int | float | None = None,
    max_steps: int = -1,
    enable_progress_bar: bool = True,
    extra_callbacks: Sequence[Callback] = (),
    precision: str | None = None,
    gradient_clip_val: float | None = None,
    checkpoint_dir: Path | None = None,
    log_version: str = "",
) -> pl.Trainer:
    """A configured Trainer writing into ``run_dir``.

    ``monitor``/``mode``: the validation metric for early stopping and the best checkpoint.
    ``patience=None`` disables early stopping. ``max_time_minutes`` caps training wall time.
    ``checkpoint_dir``/``log_version`` separate several models trained in one run (ensemble members).
    """
    acc, n_devices, strategy = resolve_devices(devices, accelerator)
    checkpoint_dir = Path(checkpoint_dir or run_dir.checkpoints_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best = AtomicModelCheckpoint(dirpath=checkpoint_dir, filename=Path(BEST_CHECKPOINT).stem,
                                 monitor=monitor, mode=mode, save_top_k=1, save_last=True,
                                 enable_version_counter=False)
    callbacks: list[Callback] = [best, StopOnNonFiniteLoss(), *extra_callbacks]
    if max_time_minutes:  # not Trainer(max_time=...): Lightning's Timer stops after the budget, not before it
        callbacks.append(BudgetTimer(timedelta(minutes=max_time_minutes)))
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience, check_finite=False))
    if enable_progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    logger = ResumableCSVLogger(save_dir=str(run_dir.path), name="logs", version=log_version)
    _quiet_lightning()
    return pl.Trainer(
        accelerator=acc,
        devices=n_devices,
        strategy=strategy,
        max_epochs=max_epochs,
        max_steps=max_steps,
        callbacks=callbacks,
        logger=logger,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None if isinstance(val_check_interval, int) else 1,
        default_root_dir=str(run_dir.path),
        precision=precision or ("16-mixed" if acc == "gpu" else "32-true"),
        gradient_clip_val=gradient_clip_val,
        deterministic=False,
    )


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; a resumed run must append to it."""

    def _check_log_dir_exists(self) -> None:
        return None

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if self._fs.isfile(self.metrics_file_path):  # continue with the old header's columns
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(next(csv.reader(file), []))


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that keeps the rows of the interrupted run when training resumes."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """Path of the best checkpoint the trainer saved (None if validation never ran)."""
    for cb in trainer.callbacks:
        if isinstance(cb, AtomicModelCheckpoint) and cb.best_model_path:
            return cb.best_model_path
    return None


def _quiet_lightning() -> None:
    """Hide Lightning's start-up chatter (GPU/TPU availability, litlogger tips) and known CPU warnings."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")
    warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")  # inside Lightning, torch>=2.10
