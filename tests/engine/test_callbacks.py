"""The checkpoint callback keeps ``last.ckpt`` current even when the monitored metric stops improving;
a non-finite loss stops training."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from medlearn.engine.callbacks import TrainingDiverged
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
