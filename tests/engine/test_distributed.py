"""``--devices 2``: DDP on CPU (gloo) through the CLI, as a user would run it.

Lightning's DDP launcher re-runs the command line in a child process, so this goes through the
installed ``medlearn`` entry point in a subprocess rather than in pytest's own process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from medlearn.engine.distributed import is_primary_process
from medlearn.engine.rundir import RunDirectory
from tests.conftest import make_images

MEDLEARN = Path(sys.executable).parent / "medlearn"


def test_primary_process_from_environment(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("NODE_RANK", raising=False)
    assert is_primary_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_primary_process()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert not is_primary_process()


def test_worker_process_leaves_an_unfinished_run_alone(tmp_path, monkeypatch):
    run = RunDirectory(tmp_path / "run")
    run.prepare()
    (run.path / "plan.json").write_text("{}")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert run.prepare(force=True) is False  # neither an error nor a wipe of the primary's files
    assert (run.path / "plan.json").exists()


def test_two_process_ddp_training_finishes_one_run(tmp_path):
    arrays = {}
    for k, (split, n) in enumerate((("train", 48), ("val", 16), ("test", 16))):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = make_images(n, seed=k)
    np.savez(tmp_path / "tiny.npz", **arrays)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([str(MEDLEARN), "classify", "train", str(tmp_path / "tiny.npz"), "-o", str(run),
                           "--devices", "2", "--set", "network.name=smallcnn", "--set", "network.widths=[8,16]",
                           "--set", "train.max_epochs=2", "--set", "train.batch_size=16", "--set", "train.ensemble=1",
                           "--quiet", "--bootstrap", "20"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run / "plan.json").read_text())["train"]["devices"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["n"] == 16 and 0 <= metrics["test"]["auc"]["value"] <= 1
    log = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) > 2  # one CSV log, written by the primary process


def test_two_process_ddp_segmentation_finishes_one_run(tmp_path):
    from medlearn.tasks.segment.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "seg", n_cases=6, size=32)
    run = tmp_path / "segrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([str(MEDLEARN), "segment", "train", str(data), "-o", str(run), "--devices", "2",
                           "--set", "network.channels=[8,16,32]", "--set", "network.strides=[2,2]",
                           "--set", "train.patch_size=[32,32]", "--set", "train.batch_size=4",
                           "--set", "train.steps_per_epoch=5", "--set", "train.max_epochs=2",
                           "--set", "inference.engine=torch", "--set", "train.ensemble=2", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["steps"] > 0 and "val" in metrics
    # with DDP the ensemble members train one after another, each on both processes
    assert metrics["training"]["members"] == 2 and metrics["training"]["members_side_by_side"] == 1
    assert "Traceback" not in proc.stderr
    assert "Grad strides do not match" not in proc.stderr  # layout set before DDP wraps the model
