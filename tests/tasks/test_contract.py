"""Every registered task keeps the one contract: the same CLI verbs, run directory, artefact, CIs,
overwrite rules, resume after a hard kill, and refusal of model files that would run code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import medlearn
from medlearn.errors import InputError
from medlearn.tasks import TASKS, get_task
from tests.conftest import REPO, cli_exit_code
from tests.tasks.recipes import RECIPES

RUN_FILES = ("plan.json", "config.yaml", "model.pt", "metrics.json", "report.html", "versions.json", "splits.json")


def _has_ci(tree: Any) -> bool:
    if isinstance(tree, dict):
        if "value" in tree and "ci95" in tree:
            return True
        return any(_has_ci(v) for v in tree.values())
    return False


class _Payload:
    """Unpickling this runs a command that leaves a marker file: a loader that runs code fails the test."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path) -> None:
    torch.save({"format": "medlearn.artifact", "model": _Payload(marker)}, path)


@pytest.fixture(scope="module", params=sorted(TASKS))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any, Path]:
    name = request.param
    if name not in RECIPES:
        pytest.fail(f"task '{name}' has no recipe in tests/tasks/recipes.py")
    folder = tmp_path_factory.mktemp(name)
    recipe = RECIPES[name](folder)
    run = folder / "run"
    assert cli_exit_code([name, "train", *recipe.train, "-o", run]) == 0
    return name, recipe, run


def test_train_writes_the_run_directory_with_cis(trained: tuple[str, Any, Path]) -> None:
    name, _, run = trained
    for file in RUN_FILES:
        assert (run / file).exists(), file
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == name and _has_ci(metrics)
    splits = json.loads((run / "splits.json").read_text())
    assert splits["format"] == "medlearn.splits/1" and set(splits) >= {"train", "val", "test", "seed", "unit"}


def test_load_run_predict_and_evaluate(trained: tuple[str, Any, Path], tmp_path: Path) -> None:
    name, recipe, run = trained
    model = medlearn.load_run(run)
    assert isinstance(model, get_task(name).model_class) and model.describe()["task"] == name
    out = tmp_path / ("pred" if recipe.predict_folder else "pred.csv")
    assert cli_exit_code([name, "predict", run, *recipe.predict, "-o", out]) == 0
    assert out.exists()
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    assert cli_exit_code([name, "evaluate", run, *recipe.evaluate, "--name", "check"]) == 0
    evaluation = json.loads((run / "evaluations" / "check" / "metrics.json").read_text())
    assert _has_ci(evaluation) and (run / "evaluations" / "check" / "report.html").exists()
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before


def test_a_finished_run_is_never_overwritten_without_force(trained: tuple[str, Any, Path],
                                                           capsys: pytest.CaptureFixture) -> None:
    name, recipe, run = trained
    before = (run / "metrics.json").read_bytes()
    assert cli_exit_code([name, "train", *recipe.train, "-o", run]) == 2
    assert "finished run" in capsys.readouterr().err
    # --force with a typo in --set: refused before anything is deleted
    assert cli_exit_code([name, "train", *recipe.train, "-o", run, "--force", "--set", "train.nope=1"]) == 2
    assert "unknown plan field" in capsys.readouterr().err
    assert (run / "metrics.json").read_bytes() == before and (run / "model.pt").exists()


def test_a_model_file_that_would_run_code_is_refused(trained: tuple[str, Any, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    name, recipe, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    marker = tmp_path / "pwned"
    _plant(copy / "model.pt", marker)
    out = tmp_path / ("p" if recipe.predict_folder else "p.csv")
    assert cli_exit_code([name, "predict", copy, *recipe.predict, "-o", out]) == 2
    assert cli_exit_code([name, "evaluate", copy, *recipe.evaluate]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and not marker.exists()
    with pytest.raises(InputError, match="refused"):
        medlearn.load_run(copy)
    assert not marker.exists()


def test_the_model_serves_and_exports(trained: tuple[str, Any, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from medlearn.serve import create_app
    from medlearn.serve.models import load_models

    name, recipe, run = trained
    client = TestClient(create_app(load_models([run])))
    listed = client.get("/models").json()["models"]
    assert listed[0]["task"] == name and listed[0]["servable"]
    url = f"/models/{listed[0]['name']}/predict"
    if recipe.serve_files:
        files = [("files", (f"f{i}", Path(f).read_bytes())) for i, f in enumerate(recipe.serve_files)]
        response = client.post(url, files=files)
    else:
        response = client.post(url, json=recipe.serve_json)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["results"] and response.json()["files"]
    code = cli_exit_code(["export", run, "-o", tmp_path / "m.onnx"])
    if recipe.exports:
        assert code == 0 and (tmp_path / "m.onnx").stat().st_size > 0
    else:
        assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def test_a_run_killed_mid_training_resumes_to_a_finished_run(trained: tuple[str, Any, Path], tmp_path: Path) -> None:
    name, recipe, _ = trained
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "medlearn.cli.main", name, "train", *map(str, recipe.train), *recipe.slow,
            "-o", str(run), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (run / "checkpoints").is_dir() and any((run / "checkpoints").rglob("last.ckpt")):
                time.sleep(1.0)
                break
            time.sleep(0.2)
        assert process.poll() is None, "training ended before it could be killed (make the recipe's slow longer)"
    finally:
        _kill_group(process)
    assert not (run / "metrics.json").exists()
    # a planted payload in the interrupted run's checkpoint is refused on --resume, and runs nothing
    marker = tmp_path / "pwned"
    last = next((run / "checkpoints").rglob("last.ckpt"))
    saved = last.read_bytes()
    _plant(last, marker)
    assert cli_exit_code([name, "train", *recipe.train, *recipe.slow, "-o", run, "--resume"]) == 2
    assert not marker.exists()
    last.write_bytes(saved)
    assert cli_exit_code([name, "train", *recipe.train, *recipe.slow, "-o", run, "--resume"]) == 0
    assert (run / "metrics.json").exists() and medlearn.load_run(run) is not None
