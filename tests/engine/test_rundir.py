from pathlib import Path

import pytest

from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError, RunExistsError
from medlearn.io import write_json, write_text


def test_prepare_rules(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    assert run.prepare() is False and run.logs_dir.is_dir()
    write_text(run.plan_file, "{}")
    with pytest.raises(RunExistsError, match="unfinished run"):
        run.prepare()
    run.checkpoints_dir.mkdir()
    (run.checkpoints_dir / "last.ckpt").write_bytes(b"x")
    assert run.prepare(resume=True) is True
    write_json(run.metrics_file, {"ok": 1})
    with pytest.raises(RunExistsError, match="finished run"):
        run.prepare(resume=True)
    assert run.prepare(force=True) is False and not run.metrics_file.exists()
    with pytest.raises(InputError, match="no run to resume"):
        RunDirectory(tmp_path / "nothing").prepare(resume=True)


def test_versions_and_config(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.write_versions(seed=3)
    run.write_config({"data": Path("x.csv"), "seed": 3})
    import json

    versions = json.loads(run.versions_file.read_text())
    assert versions["seed"] == 3 and "torch" in versions and "monai" in versions
    assert "data: x.csv" in run.config_file.read_text()


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})

    class Boom:
        def tolist(self) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_json(target, {"a": Boom()})
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_require_finished(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        RunDirectory(tmp_path / "missing").require_finished()
    with pytest.raises(InputError, match="no model.pt"):
        RunDirectory(tmp_path).require_finished()
