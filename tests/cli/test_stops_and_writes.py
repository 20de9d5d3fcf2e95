"""Ctrl-C and failed writes end with one line, and leave nothing half-written behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import FAST, REPO, cli_exit_code


def test_ctrl_c_says_how_to_resume_and_exits_130(tiny_npz: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [sys.executable, "-m", "medlearn.cli.main", "classify", "train", str(tiny_npz), "-o", str(run),
            *FAST, "--set", "train.max_epochs=500", "--set", "train.patience=null"]
    # A shell that starts a job in the background (CI runners, `make test &`) hands it SIGINT ignored, and
    # the ignored disposition survives exec: restore the terminal's default so Ctrl-C reaches the run.
    process = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run / "checkpoints" / "last.ckpt").exists():
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole process group
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: rerun with --resume to continue" in err and "Traceback" not in err
    assert not (run / "metrics.json").exists()
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", run, *FAST, "--resume"]) == 0


def test_an_unwritable_output_is_one_line_and_leaves_no_temporary_file(tiny_npz: Path, tmp_path: Path,
                                                                       capsys) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", blocker / "run", *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0] and "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder", tiny_npz.name]


def test_a_write_that_fails_half_way_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    from medlearn.io import write_text

    target = tmp_path / "metrics.json"
    write_text(target, "old")

    def full_disk(self: Path, data: bytes) -> int:
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    try:
        write_text(target, "new")
    except OSError as exc:
        assert exc.errno == 28
    monkeypatch.undo()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
