"""The checkpoint callback keeps ``last.ckpt`` current even when the monitored metric stops improving;
a non-finite loss stops training; the time budget holds the closing validation."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from medlearn.engine.callbacks import BudgetTimer, TrainingDiverged
from medlearn.engine.rundir import RunDirectory
from medlearn.engine.trainer import build_trainer
from medlearn.errors import InputError


class _Worsening(pl.LightningModule):
    """A module whose logged validation score only gets worse after the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("score", -float(self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_checkpoint_follows_training_past_the_best(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.prepare()
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    trainer = build_trainer(run, max_epochs=4, monitor="score", mode="max", patience=None, enable_progress_bar=False)
    trainer.fit(_Worsening(), data, data)
    best = torch.load(run.checkpoints_dir / "best.ckpt", weights_only=False)
    last = torch.load(run.checkpoints_dir / "last.ckpt", weights_only=False)
    assert best["global_step"] == 2  # epoch 0 scored best
    assert last["global_step"] == 8  # every epoch refreshed last.ckpt


class _Diverging(_Worsening):
    """A module whose training loss becomes NaN at its fourth step (global_step 3 before it)."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step >= 3 else loss


def test_a_non_finite_loss_stops_training_with_one_line(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.prepare()
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    trainer = build_trainer(run, max_epochs=10, monitor="score", mode="max", patience=None, enable_progress_bar=False)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 4") as error:
        trainer.fit(_Diverging(), data, data)
    assert isinstance(error.value, InputError) and "\n" not in str(error.value)  # exit code 2, one line
    assert torch.load(run.checkpoints_dir / "last.ckpt", weights_only=False)["global_step"] == 2  # before the NaN


class _Slow(_Worsening):
    """Steps of ~40 ms and validations of ~300 ms: the budget must hold the closing validation too."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        time.sleep(0.04)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        time.sleep(0.15)  # two validation batches
        super().validation_step(batch, batch_idx)


def test_the_time_budget_ends_training_before_it_not_after(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.prepare()
    train = DataLoader(TensorDataset(torch.randn(40, 2), torch.randn(40, 1)), batch_size=4)  # 10 steps per epoch
    val = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    budget = 2.4  # seconds: ~3 epochs of (0.4 s steps + 0.3 s validation), and no fourth
    trainer = build_trainer(run, max_epochs=100, monitor="score", mode="max", patience=None, enable_progress_bar=False,
                            max_time_minutes=budget / 60)
    started = time.perf_counter()
    trainer.fit(_Slow(), train, val)
    elapsed = time.perf_counter() - started
    assert elapsed < budget  # Lightning's own Timer ends a step and a validation past it
    assert trainer.global_step >= 20 and elapsed > budget - 1.0  # and it did not stop far too early
    timer = next(c for c in trainer.callbacks if isinstance(c, BudgetTimer))
    assert 0.2 < timer.closing_seconds < 0.6 and 0.03 < timer.step_seconds < 0.1


class _EvenPaced(_Worsening):
    """Steps of ~40 ms and validation batches of ~30 ms."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        time.sleep(0.04)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        time.sleep(0.03)
        super().validation_step(batch, batch_idx)


def test_a_budget_shorter_than_an_epoch_holds_its_only_validation(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.prepare()
    train = DataLoader(TensorDataset(torch.randn(160, 2), torch.randn(160, 1)), batch_size=4)  # 40 steps: 1.6 s
    val = DataLoader(TensorDataset(torch.randn(40, 2), torch.randn(40, 1)), batch_size=4)  # 10 batches: 0.3 s
    budget = 1.5  # seconds: no validation has been measured when the budget runs out
    trainer = build_trainer(run, max_epochs=100, monitor="score", mode="max", patience=None, enable_progress_bar=False,
                            max_time_minutes=budget / 60)
    started = time.perf_counter()
    trainer.fit(_EvenPaced(), train, val)
    elapsed = time.perf_counter() - started
    assert 10 <= trainer.global_step < 40  # stopped inside the first epoch, not at once
    assert elapsed < budget  # a step per validation batch was reserved for the closing validation (0.3 s)


def test_a_resumed_run_continues_the_budget_it_had_spent(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.prepare()
    train = DataLoader(TensorDataset(torch.randn(40, 2), torch.randn(40, 1)), batch_size=4)
    val = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    first = build_trainer(run, max_epochs=2, monitor="score", mode="max", patience=None, enable_progress_bar=False,
                          max_time_minutes=1.0)
    first.fit(_Slow(), train, val)
    saved = torch.load(run.checkpoints_dir / "last.ckpt", weights_only=False)["callbacks"]
    spent = next(v for k, v in saved.items() if "BudgetTimer" in k)["time_elapsed"]["train"]
    assert spent > 1.0  # two epochs of ~0.7 s
    second = build_trainer(run, max_epochs=100, monitor="score", mode="max", patience=None,
                           enable_progress_bar=False, max_time_minutes=(spent + 1.0) / 60)
    started = time.perf_counter()
    second.fit(_Slow(), train, val, ckpt_path=str(run.checkpoints_dir / "last.ckpt"))
    assert time.perf_counter() - started < 1.0 + 0.3  # only the budget left over (plus checkpoint loading)
