"""Targets nothing can be learnt from are refused with one line naming the column, before anything is
written (issue 16): one class, a constant measurement (once taken for classification), all empty, Inf."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_exit_code
from tests.tasks.qsar.conftest import many_smiles


@pytest.mark.parametrize("values, task, words", [
    ([1.0] * 40, None, "one class only"),                      # a 0/1 column with a single class
    ([0.0] * 40, "classification", "one class only"),
    ([3.5] * 40, None, "a single value"),                      # a constant measurement
    ([1.0] * 40, "regression", "a single value"),              # constant 1.0: not a classification either
    ([np.nan] * 40, None, "has no values"),
    ([1.0, np.inf] + [2.0] * 38, None, "infinite value (row 1)"),
    ([0.0, 1.0, 2.0] + [0.0] * 37, "classification", "needs labels 0/1"),
])
def test_degenerate_target_is_refused_naming_the_column(tmp_path, capsys, values, task, words):
    good = np.linspace(0, 1, 40)  # a learnable column beside the bad one
    if task == "classification":
        good = (good > 0.5).astype(float)
    csv = tmp_path / "d.csv"
    pd.DataFrame({"smiles": many_smiles(5), "good": good, "bad": values}).to_csv(csv, index=False)
    run = tmp_path / "run"
    args = ["qsar", "train", csv, "--target", "good", "--target", "bad", "-o", run] + (["--task", task] if task else [])
    assert cli_exit_code(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bad'" in err[0] and words in err[0] and "d.csv" in err[0]
    assert not run.exists()
