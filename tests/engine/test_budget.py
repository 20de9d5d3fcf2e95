"""A plan fits the time budget of the machine it runs on, or says plainly how short it falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medlearn.engine.budget as budget
from tests.conftest import FAST, cli_exit_code


def test_a_slow_machine_shrinks_the_classification_schedule_and_says_so(tiny_npz: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    # 2 s per step: 5 members x 10 epochs x 3 steps would take minutes, over a 0.2-min budget
    monkeypatch.setattr(budget, "measure_step_seconds", lambda *_a, **_k: 2.0)
    # the user chose the schedule (max_epochs, ensemble): kept, with a warning that it will not fit
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "r", *FAST, "--set", "train.max_epochs=10",
                          "--set", "train.max_minutes=0.2"]) == 0
    out = capsys.readouterr().out
    assert "expected ~1 min, over the 0.2-min budget" in out
    assert budget_plan(tmp_path / "r")["train"]["max_epochs"] == 10
    fitted = tmp_path / "fitted"
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", fitted, "--set", "network.name=smallcnn",
                          "--set", "network.widths=[8,16]", "--set", "train.max_minutes=0.5", "--quiet",
                          "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    # the rules' 5 members x 100 epochs (~60 min at 2 s per step here) shrink: epochs first (to 10), then members
    assert "5 member(s) x 100 epochs would take ~60 min" in out and "planned 1 member(s) x 10 epochs" in out
    plan = budget_plan(fitted)
    assert (plan["train"]["ensemble"], plan["train"]["max_epochs"]) == (1, 10)
    planned = json.loads((fitted / "metrics.json").read_text())["training"]["planned"]
    assert planned["seconds_per_step"] == 2.0 and planned["expected_minutes"] < 2  # one 10-epoch member


def test_time_bounded_training_says_how_undertrained_it_will_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    from medlearn.tasks.segment.synthetic import make_synthetic_dataset

    monkeypatch.setattr(budget, "measure_step_seconds", lambda *_a, **_k: 5.0)
    data = make_synthetic_dataset(tmp_path / "ds", n_cases=3, size=32)
    assert cli_exit_code(["segment", "train", data, "-o", tmp_path / "r", "--set", "network.channels=[8,16,32]",
                          "--set", "network.strides=[2,2]", "--set", "train.patch_size=[32,32]",
                          "--set", "train.batch_size=4", "--set", "train.steps_per_epoch=5",
                          "--set", "train.max_minutes=0.05", "--set", "train.ensemble=1", "--quiet",
                          "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "will be undertrained" in out and "ms per step" in out


def budget_plan(run: Path) -> dict:
    return json.loads((run / "plan.json").read_text())
