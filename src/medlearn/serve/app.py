"""The FastAPI application: ``GET /health``, ``GET /models``, ``POST /models/{name}/predict``, the web
page at ``/`` and the OpenAPI schema (``/openapi.json``, browsable at ``/docs``).

A predict request runs in a worker thread inside its own temporary folder (the stored uploads, and
``out/`` for what the model writes), removed before the response is sent; the output files travel in the
response (base64). Errors are ``{"error": "one message"}``: 400 bad input (:class:`InputError`), 401
token, 404 unknown model or path, 413 too large, 415 unsupported format or content type, 422 malformed
body, 501 a task that cannot be served yet, 500 anything unexpected (its type only; the service keeps
serving). Every response carries ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from medlearn.errors import InputError
from medlearn.serve.errors import ServiceError, unsupported
from medlearn.serve.models import ServedModel
from medlearn.serve.privacy import SERVICE_LOGGER, RequestPrivacy, install_hooks, library_logs_withheld, printable
from medlearn.serve.records import parse_records
from medlearn.serve.reference import REFERENCE_CSP, reference_html
from medlearn.serve.respond import dumps, embed_files, jsonable, scrub_viewer
from medlearn.serve.uploads import parse_multipart, read_body, store_uploads
from medlearn.tasks.base import ServiceInput

log = logging.getLogger(SERVICE_LOGGER)

STATIC = Path(__file__).with_name("static")
#: data-free pages that must load before a token can be typed or sent (the page reads ``?token=``)
PUBLIC_PATHS = frozenset({"/", "/docs", "/openapi.json", "/favicon.ico"})
#: the service's own option (the rest go to the model): accept DICOM whose pixels may show identifiers
KEEP_BURNED_IN = "keep_burned_in"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                    "x-frame-options": "DENY", "cache-control": "no-store"}


@dataclass(frozen=True)
class ServiceConfig:
    """``max_upload_bytes``: request body limit; ``token``: required as ``Authorization: Bearer`` on
    every request but the data-free pages (:data:`PUBLIC_PATHS`); ``allowed_hosts``: the Host names
    accepted (set for a loopback service without token, against DNS rebinding; None: any)."""

    max_upload_bytes: int = 100 * 2 ** 20
    token: str | None = None
    allowed_hosts: frozenset[str] | None = None


# -- OpenAPI documentation models (responses are built as plain JSON, these describe them) ----------
class ErrorBody(BaseModel):
    error: str


class Health(BaseModel):
    status: str
    version: str
    models: int


class ModelInfo(BaseModel):
    name: str
    task: str
    inputs: str
    labels: list[str] | None = None
    servable: bool
    summary: dict[str, Any]


class ModelList(BaseModel):
    models: list[ModelInfo]


class EmbeddedFile(BaseModel):
    name: str
    media_type: str
    bytes: int
    data: str


class PredictResponse(BaseModel):
    model: str
    task: str
    inputs: str
    uploads: list[dict[str, Any]]
    results: list[dict[str, Any]]
    files: list[EmbeddedFile]
    viewer: list[dict[str, Any]]
    elapsed_ms: float


_ERRORS = {code: {"model": ErrorBody, "description": text} for code, text in (
    (400, "bad input (the model's or the upload's message)"), (401, "missing or wrong token"),
    (404, "unknown model"), (413, "upload too large"), (415, "unsupported format or content type"),
    (422, "malformed request body"), (501, "this task cannot be served yet"))}
_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "images (inputs 'image'): NIfTI, DICOM file, zip of a DICOM series, PNG/JPEG/TIFF"},
        "options": {"type": "string", "description": "JSON object of task options, e.g. {\"series\": \"0\"}"}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "records": {"type": "array", "items": {"type": "object"},
                    "description": "inputs 'smiles': [{\"smiles\": ...}]; 'pairs': [{\"smiles\", \"sequence\"}]"},
        "options": {"type": "object", "description": "task options, e.g. {\"n\": 10} for generators"}}}}}}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bearer(scope: dict[str, Any]) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            text = value.decode("latin-1")
            return text[7:].strip() if text[:7].lower() == "bearer " else None
    return None


def _host(scope: dict[str, Any]) -> str:
    for key, value in scope.get("headers", []):
        if key == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:8000
                return host[1:host.find("]")] if "]" in host else host
            return re.sub(r":\d+$", "", host)
    return ""


class Guard:
    """ASGI middleware: Host and token checks before anything else, security headers on every
    response, and one log line per request (method, path, status, milliseconds; nothing else)."""

    def __init__(self, app: Any, config: ServiceConfig) -> None:
        self.app, self.config = app, config
        self._token = config.token.encode("utf-8") if config.token else None

    def refusal(self, scope: dict[str, Any]) -> JSONResponse | None:
        if self.config.allowed_hosts is not None and _host(scope) not in self.config.allowed_hosts:
            return error_response(400, "unexpected Host header: use the address the service was started on")
        if self._token is not None and scope["path"] not in PUBLIC_PATHS:
            given = _bearer(scope)
            if given is None:
                return error_response(401, "missing token: send 'Authorization: Bearer <token>'",
                                      {"www-authenticate": "Bearer"})
            if not hmac.compare_digest(given.encode("utf-8"), self._token):
                return error_response(401, "wrong token", {"www-authenticate": "Bearer"})
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        try:
            refused = self.refusal(scope)
            if refused is not None:
                await refused(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            log.info("%s %s %d %.0f ms", printable(scope.get("method", "?"), 10), printable(scope.get("path", "")),
                     status[0], (time.perf_counter() - started) * 1000)


def _page() -> tuple[bytes, str]:
    """The web page and its Content-Security-Policy (inline script and style allowed by their hashes)."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    return html.encode("utf-8"), csp


def _where(exc: BaseException) -> str:
    """``module.py:line`` where ``exc`` was raised (for the log: no message, it may quote the input)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def create_app(models: Mapping[str, ServedModel], config: ServiceConfig | None = None) -> FastAPI:
    """The service for ``models`` (URL name -> :class:`ServedModel`)."""
    from medlearn import __version__

    config = config or ServiceConfig()
    models = dict(models)
    install_hooks()  # now, before any request thread exists
    # docs_url=None: Swagger UI loads its code from a CDN (blank offline); /docs is rendered here instead
    app = FastAPI(title="medlearn", version=__version__, description="Trained medlearn models: upload images "
                  "or send molecules, get predictions and output files back. Nothing is stored.",
                  docs_url=None, redoc_url=None)
    page, csp = _page()

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = {404: "no such endpoint (see /docs)", 405: "method not allowed on this endpoint"}.get(
            exc.status_code, str(exc.detail))
        return error_response(exc.status_code, text)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "malformed request")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return HTMLResponse(page, headers={"content-security-policy": csp})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(reference_html(app.openapi()), headers={"content-security-policy": REFERENCE_CSP})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/health", response_model=Health, responses={401: _ERRORS[401]})
    async def health() -> dict[str, Any]:
        """The service is up; how many models it serves."""
        return {"status": "ok", "version": __version__, "models": len(models)}

    @app.get("/models", response_model=ModelList, responses={401: _ERRORS[401]})
    async def list_models() -> dict[str, Any]:
        """Each model: URL name, task, the inputs it takes (image, smiles, pairs, count), labels, plan summary."""
        return {"models": [jsonable(m.info()) for m in models.values()]}

    @app.post("/models/{name}/predict", response_model=PredictResponse, responses=_ERRORS,
              openapi_extra=_PREDICT_BODY)
    async def predict(name: str, request: Request) -> Response:
        """Predict uploaded images (multipart field ``files``, optional ``options`` JSON) or JSON records.

        The response holds one result per input item, the viewer payloads (image + overlay, 8-bit) and
        the output files (base64)."""
        entry = models.get(name)
        if entry is None:
            raise ServiceError(404, f"unknown model; GET /models lists the {len(models)} served here")
        if not entry.servable:
            raise ServiceError(501, f"model '{entry.name}' ({entry.info()['task']}) cannot be served yet")
        content_type = request.headers.get("content-type", "")
        if entry.input_kind == "image" and not content_type.lower().startswith("multipart/form-data"):
            raise unsupported(f"model '{entry.name}' takes images: POST them as multipart/form-data "
                              "(form field 'files')")
        if entry.input_kind != "image" and content_type.split(";")[0].strip().lower() != "application/json":
            raise unsupported(f"model '{entry.name}' takes {entry.input_kind} records: POST application/json "
                              '{"records": [...], "options": {...}}')
        body = await read_body(request.stream(), request.headers.get("content-length"), config.max_upload_bytes)
        payload = await run_in_threadpool(_predict, entry, body, content_type, config)
        return Response(payload, media_type="application/json")

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "required when the service was started with a token"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    app.add_middleware(Guard, config=config)
    return app


def _predict(entry: ServedModel, body: bytes, content_type: str, config: ServiceConfig) -> bytes:
    """One predict request, in a worker thread: parse, store, predict under the model's lock, embed."""
    privacy = RequestPrivacy()
    started = time.perf_counter()
    with library_logs_withheld():
        try:
            with tempfile.TemporaryDirectory(prefix="medlearn-serve-") as tmp:
                inbox = Path(tmp)  # the uploads; what the model writes goes to its own folder
                outbox = inbox / "out"
                outbox.mkdir()
                privacy.folders += [outbox, inbox]
                uploads: list[dict[str, Any]] = []
                if entry.input_kind == "image":
                    form = parse_multipart(body, content_type)
                    del body
                    keep = form.options.pop(KEEP_BURNED_IN, False) is True
                    stored = store_uploads(form.files, inbox, privacy, config.max_upload_bytes, keep_burned_in=keep)
                    request = ServiceInput(files=stored.paths, records=None, options=form.options)
                    uploads = stored.summary
                else:
                    records, options = parse_records(body, entry.input_kind)
                    request = ServiceInput(files=[], records=records, options=options)
                with entry.lock:
                    output = entry.model.serve_predict(request, outbox)
                payload = {"model": entry.name, "task": entry.info()["task"], "inputs": entry.input_kind,
                           "uploads": uploads, "results": privacy.scrub_value(jsonable(output.results)),
                           "files": embed_files(list(output.files), outbox, privacy),
                           "viewer": scrub_viewer(list(output.viewer), privacy)}
            payload["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
            return dumps(payload)
        except ServiceError as exc:
            raise ServiceError(exc.status, privacy.scrub(exc.message), exc.headers) from None
        except InputError as exc:
            raise ServiceError(400, privacy.scrub(str(exc)).replace("\n", " ")) from None
        except MemoryError:
            raise ServiceError(413, "the input is too large to predict in this service's memory") from None
        except Exception as exc:  # noqa: BLE001 -- one bad request must not stop the service
            log.error("predict failed on model %s: %s at %s", entry.name, type(exc).__name__, _where(exc))
            raise ServiceError(500, f"internal error while predicting ({type(exc).__name__}); the service "
                                    "keeps serving") from None
