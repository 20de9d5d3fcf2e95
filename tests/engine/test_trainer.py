"""Engine trainer helpers: the warm-up EMA used by every task's weight averaging."""

from __future__ import annotations

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from medlearn.engine.trainer import ema_callbacks, warmup_ema


def test_warmup_ema_follows_early_weights_then_caps_the_decay() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    average = AveragedModel(model, multi_avg_fn=warmup_ema(0.99), use_buffers=True)
    average.update_parameters(model)  # first update copies the weights
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update_parameters(model)  # n = 1: decay 2/11, so the average moves most of the way
    assert average.module.weight[0, 0].item() == pytest.approx(1 - 2 / 11)
    for _ in range(2000):  # long after the warm-up the decay is capped at 0.99
        average.update_parameters(model)
    with torch.no_grad():
        model.weight.fill_(0.0)
    before = average.module.weight[0, 0].item()
    average.update_parameters(model)
    assert average.module.weight[0, 0].item() == pytest.approx(0.99 * before)


def test_ema_callbacks_only_when_a_decay_is_set() -> None:
    assert ema_callbacks(None) == [] and ema_callbacks(0.0) == []
    assert len(ema_callbacks(0.999)) == 1
