"""Running the service: the binding rule, logging, uvicorn in the foreground or in a thread.

Safe by default: the service binds 127.0.0.1. Any address that is not loopback needs a token
(``--token`` or ``MEDLEARN_TOKEN``, at least :data:`MIN_TOKEN_LENGTH` characters) checked on every
request. Without a token only loopback Host names are accepted (a web page elsewhere cannot reach the
service through DNS rebinding). Uvicorn's own access log is off: the service logs method, path,
status and time (:class:`medlearn.serve.app.Guard`) — never a query string, a file name or a header.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from medlearn.errors import InputError
from medlearn.serve.app import ServiceConfig, create_app
from medlearn.serve.models import load_models
from medlearn.serve.privacy import SERVICE_LOGGER

MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

LOG_CONFIG: dict[str, Any] = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(message)s", "datefmt": "%H:%M:%S"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "loggers": {SERVICE_LOGGER: {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def service_config(host: str, token: str | None, max_upload_mb: float) -> ServiceConfig:
    """The configuration for serving on ``host``; InputError when the binding rule is broken."""
    token = token or None
    if not is_loopback(host) and token is None:
        raise InputError("--host", f"binding {host} exposes the service beyond this machine, which needs a token",
                         "pass --token TOKEN or set MEDLEARN_TOKEN (or keep the default --host 127.0.0.1)")
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token)):
        raise InputError("--token", f"must be at least {MIN_TOKEN_LENGTH} characters without spaces",
                         "e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    if not max_upload_mb > 0:
        raise InputError("--max-upload-mb", f"must be positive, got {max_upload_mb}")
    hosts = None if token is not None else frozenset(LOOPBACK_NAMES | {host.lower().strip("[]")})
    return ServiceConfig(max_upload_bytes=int(max_upload_mb * 2 ** 20), token=token, allowed_hosts=hosts)


def build_server(runs: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
                 max_upload_mb: float = 100.0, echo: Callable[[str], None] = print) -> Any:
    """The uvicorn server :func:`serve` runs: runs loaded, binding rule checked, logging configured."""
    import uvicorn

    config = service_config(host, token, max_upload_mb)
    models = load_models(runs)
    for name, entry in models.items():
        state = "" if entry.servable else " (its task cannot be served yet)"
        echo(f"model {name}: {entry.info()['task']}, inputs {entry.input_kind}{state}")
    return uvicorn.Server(uvicorn.Config(create_app(models, config), host=host, port=port, log_config=LOG_CONFIG,
                                         access_log=False, server_header=False, proxy_headers=False,
                                         log_level="info"))


def serve(runs: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_upload_mb: float = 100.0, echo: Callable[[str], None] = print) -> None:
    """Load the runs and serve them in the foreground until Ctrl-C."""
    server = build_server(runs, host, port, token, max_upload_mb, echo)
    shown = f"[{host}]" if ":" in host else host
    echo(f"serving on http://{shown}:{port}/" + ("  (open it once with ?token=<your token>)" if token else ""))
    server.run()
    if not server.started:
        raise InputError(f"{shown}:{port}", "the service could not listen there (port in use, or not an address "
                         "of this machine)", "choose another --port or --host")


@contextlib.contextmanager
def background(app: Any, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread (tests, benchmarks); yields its base URL."""
    import uvicorn

    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only then (else Nagle + delayed
    # ACK add ~40 ms to every keep-alive response)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, server_header=False,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="medlearn-serve")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
