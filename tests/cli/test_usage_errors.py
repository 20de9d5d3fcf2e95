"""Command-line mistakes (unknown option, missing argument) exit 2 with a usage message, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

MEDLEARN = Path(sys.executable).parent / "medlearn"


@pytest.mark.parametrize("args, words", [(["classify", "train", "x.npz", "--no-such-option"], "No such option"),
                                         (["segment", "train"], "Missing argument"),
                                         (["qsar", "train", "x.csv", "--seed", "abc"], "Invalid value")])
def test_usage_errors_exit_2_without_traceback(args, words):
    proc = subprocess.run([str(MEDLEARN), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
