"""The one model artefact: plain data in, plain data out; anything else refused in one line, nothing run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import medlearn
from medlearn.errors import InputError
from medlearn.io import write_json
from medlearn.io.artifact import Artifact, load_artifact, load_estimator, save_artifact


def _artifact(**changes) -> Artifact:
    base = dict(task="classify", plan={"train": {"seed": 1}}, tensors={"net": {"w": torch.arange(3.0)}},
                extras={"labels": ["a", "b"], "numpy": np.float32(0.5), "path": Path("x")})
    return Artifact(**{**base, **changes})


def test_round_trip_of_tensors_extras_and_estimators(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.random.rand(20, 3), np.random.rand(20))
    save_artifact(tmp_path / "model.pt", _artifact(estimators={"rf": forest}))
    back = load_artifact(tmp_path / "model.pt", task="classify")
    assert torch.equal(back.tensors["net"]["w"], torch.arange(3.0))
    assert back.extras == {"labels": ["a", "b"], "numpy": 0.5, "path": "x"} and back.plan["train"]["seed"] == 1
    x = np.random.rand(4, 3)
    np.testing.assert_allclose(back.estimators["rf"].predict(x), forest.predict(x))


@pytest.mark.parametrize("case,message", [
    ("other task", "is a 'classify' model, not a 'segment' model"),
    ("newer format", "written by a newer medlearn"),
    ("not medlearn", "not a medlearn model file"),
    ("truncated", "cannot read the model file"),
    ("code", "refused"),
])
def test_what_is_refused(case: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_artifact(path, _artifact())
    task = "classify"
    if case == "other task":
        task = "segment"
    elif case == "newer format":
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, "version": 99}, path)
    elif case == "not medlearn":
        torch.save({"state_dict": {}}, path)
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif case == "code":
        marker = tmp_path / "ran"

        class Payload:
            def __reduce__(self):  # noqa: ANN204
                return (os.system, (f"touch {marker}",))

        torch.save({"format": "medlearn.artifact", "x": Payload()}, path)
    with pytest.raises(InputError, match=message):
        load_artifact(path, task=task)
    assert not (tmp_path / "ran").exists()


def test_a_skops_estimator_naming_an_untrusted_type_is_refused() -> None:
    import skops.io as sio

    class Custom:  # a type outside scikit-learn and medlearn's own estimators
        pass

    blob = sio.dumps({"model": Custom()})
    with pytest.raises(InputError, match="refused"):
        load_estimator(blob, "model.pt")


def test_load_run_on_something_that_is_not_a_finished_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run directory not found"):
        medlearn.load_run(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    save_artifact(tmp_path / "half" / "model.pt", _artifact())
    with pytest.raises(InputError, match="did not finish"):
        medlearn.load_run(tmp_path / "half")
    write_json(tmp_path / "half" / "metrics.json", {})
    save_artifact(tmp_path / "half" / "model.pt", _artifact(task="retrieve"))
    with pytest.raises(InputError, match="does not know"):
        medlearn.load_run(tmp_path / "half")
