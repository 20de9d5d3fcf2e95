"""``medlearn serve``: the binding rule, model names, and the real server's log (method and path only)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from medlearn.errors import InputError
from medlearn.serve.models import unique_names
from medlearn.serve.server import is_loopback, service_config
from tests.conftest import cli_exit_code
from tests.serve.conftest import TOKEN


def test_binding_beyond_loopback_needs_a_token(classify_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_exit_code(["serve", classify_run, "--host", "0.0.0.0"]) == 2
    assert "needs a token" in capsys.readouterr().err
    assert cli_exit_code(["serve", classify_run, "--host", "0.0.0.0", "--token", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert cli_exit_code(["serve", classify_run.parent / "tiny.npz"]) == 2  # not a run directory
    assert cli_exit_code(["serve", classify_run, "--max-upload-mb", "0"]) == 2


def test_service_config() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.1.2.3", "::", "example.org"))
    local = service_config("127.0.0.1", None, 5)
    assert local.token is None and local.max_upload_bytes == 5 * 2 ** 20
    assert local.allowed_hosts is not None and {"localhost", "127.0.0.1", "::1"} <= local.allowed_hosts
    public = service_config("0.0.0.0", TOKEN, 100)
    assert public.token == TOKEN and public.allowed_hosts is None
    with pytest.raises(InputError, match="token"):
        service_config("192.168.1.5", "", 100)


def test_model_names_are_the_run_folders_made_unique(tmp_path: Path) -> None:
    runs = [tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c" / "my run!", tmp_path / "d" / "run"]
    assert unique_names(runs) == ["run", "run-2", "my_run", "run-3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_command_line_options_reach_the_server(classify_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medlearn.serve import server

    calls: list[dict] = []
    monkeypatch.setattr(server, "serve", lambda runs, **kw: calls.append({"runs": runs, **kw}))
    monkeypatch.setenv("MEDLEARN_TOKEN", TOKEN)
    assert cli_exit_code(["serve", classify_run, classify_run, "--port", "8123", "--max-upload-mb", "5"]) == 0
    (call,) = calls
    assert call["runs"] == [classify_run, classify_run]
    assert (call["host"], call["port"], call["token"], call["max_upload_mb"]) == ("127.0.0.1", 8123, TOKEN, 5.0)


@pytest.fixture
def restore_logging():
    """uvicorn configures the service's loggers (LOG_CONFIG): put them back for the other tests."""
    from medlearn.serve.server import LOG_CONFIG

    loggers = [logging.getLogger(name) for name in LOG_CONFIG["loggers"]]
    saved = [(lg.handlers[:], lg.propagate, lg.level, lg.disabled) for lg in loggers]
    yield
    for lg, (handlers, propagate, level, disabled) in zip(loggers, saved, strict=True):
        lg.handlers[:], lg.propagate, lg.disabled = handlers, propagate, disabled
        lg.setLevel(level)


def test_the_server_logs_method_and_path_only(classify_run: Path, phi_files_ct: list[Path], restore_logging,
                                              capfd: pytest.CaptureFixture) -> None:
    from medlearn.serve.server import build_server

    port, echoed = _free_port(), []
    server = build_server([classify_run], port=port, token=TOKEN, echo=echoed.append)  # what `medlearn serve` runs
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        assert httpx.get(f"{base}/health?patient=SIMPSON&token=leak", headers=auth).status_code == 200
        assert httpx.get(f"{base}/models").status_code == 401
        files = [("files", ("SIMPSON_HOMER.dcm", f.read_bytes())) for f in phi_files_ct]
        predicted = httpx.post(f"{base}/models/tiny/predict", files=files, data={"options": '{"keep_burned_in": true}'},
                               headers=auth, timeout=60)
        assert predicted.status_code == 200, predicted.text[:300]
        assert httpx.post(f"{base}/models/tiny/predict", files=files, headers=auth, timeout=60).status_code == 400
    finally:
        server.should_exit = True
        thread.join(30)
    out, err = capfd.readouterr()
    output = out + err
    assert echoed == ["model tiny: classify, inputs image"]
    lines = [line for line in output.splitlines() if line.endswith(" ms")]
    assert any("INFO GET /health 200" in line for line in lines) and any("GET /models 401" in line for line in lines)
    assert any("POST /models/tiny/predict 200" in line for line in lines)
    assert any("POST /models/tiny/predict 400" in line for line in lines)
    assert len(lines) == 4, lines
    for word in ("SIMPSON", "HOMER", "patient=", "leak", TOKEN, ".dcm", "upload-", "127.0.0.1:"):
        assert word not in "\n".join(lines), word
    assert "SIMPSON" not in output and TOKEN not in output


@pytest.fixture
def phi_files_ct(shared_data: Path) -> list[Path]:
    folder = shared_data / "dicom_samples" / "ct_brain_series_fake_phi"
    return [folder / "ctbrain1.dcm", folder / "ctbrain2.dcm"]
