"""The FastAPI app: JSON API, health, metrics, with the Gradio UI mounted at "/".

One process serves both on one port; both go through the same :class:`Runtime` (job pool,
limits, result store, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, BinaryIO, Iterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import STAGES, Config, Options, ToonforgeError, resolve_options
from pipeline.colorprint import check_colors, parse_palette
from pipeline.errors import OptionError
from pipeline.export import (
    GLB_NAME,
    GREY_GLB_NAME,
    PREVIEW_NAME,
    PRINT_PREVIEW_NAME,
    REPORT_NAME,
    STL_NAME,
    STYLIZED_NAME,
    THREEMF_NAME,
)
from pipeline.stylize import backend_availability
from service.errors import (
    INTERNAL_DETAIL,
    INTERNAL_ERROR,
    NotFoundError,
    error_body,
    http_status,
    retry_after_s,
)
from service.form import read_upload
from service.runtime import Runtime

log = logging.getLogger("toonforge.http")
access_log = logging.getLogger("toonforge.access")

ARTIFACTS = {
    "stylized": STYLIZED_NAME,
    "glb": GLB_NAME,
    "stl": STL_NAME,
    "preview": PREVIEW_NAME,
    "report": REPORT_NAME,
    "threemf": THREEMF_NAME,
    "print_preview": PRINT_PREVIEW_NAME,
    "grey_glb": GREY_GLB_NAME,
}
MEDIA_TYPES = {
    STYLIZED_NAME: "image/png",
    GLB_NAME: "model/gltf-binary",
    STL_NAME: "model/stl",
    PREVIEW_NAME: "image/png",
    REPORT_NAME: "application/json",
    THREEMF_NAME: "model/3mf",
    PRINT_PREVIEW_NAME: "image/png",
    GREY_GLB_NAME: "model/gltf-binary",
}
DOWNLOADS = {GLB_NAME, STL_NAME, THREEMF_NAME, GREY_GLB_NAME}  # served as attachments; images and JSON inline
FORM_FIELDS = ("template", "style", "backend", "seed", "height_mm", "colors", "palette")
ROUTES = ("/health", "/ready", "/metrics", "/api/upload", "/api/results/{result_id}/{name}")
UI_ROUTE = "ui"  # metrics/log label for everything the mounted Gradio app serves
SCOPE_KEY = "toonforge"
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HEALTH_CACHE_S = 10.0
CHUNK = 256 * 1024

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "template": {"type": "string", "default": "default"},
                        "style": {"type": "string", "default": "toon"},
                        "backend": {"type": "string"},
                        "seed": {"type": "integer", "default": 0},
                        "height_mm": {"type": "number"},
                        "colors": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 8,
                            "default": 4,
                            "description": "filament colours of figurine.3mf",
                        },
                        "palette": {
                            "type": "string",
                            "example": "#f2d6c4,#3b2a20,#c0392b,#ffffff",
                            "description": "your own filament colours (1-8 \"#rrggbb\", comma-separated); "
                            "overrides colors",
                        },
                    },
                }
            }
        },
    }
}


@dataclass
class RequestInfo:
    """Per-request facts the middleware logs; handlers fill in what they learn."""

    id: str
    status: int = 0
    error: str | None = None
    result_id: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def request_info(request: Request) -> RequestInfo:
    return request.scope[SCOPE_KEY]


class RequestMiddleware:
    """Request id, X-Process-Time, metrics, one log line per request, and the last-resort 500.

    Pure ASGI (not BaseHTTPMiddleware) so that Gradio's streamed responses pass untouched.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.metrics = runtime.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        sane = incoming is not None and REQUEST_ID_RE.fullmatch(incoming)
        info = RequestInfo(id=incoming if sane else uuid.uuid4().hex)
        scope[SCOPE_KEY] = info
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                info.status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = info.id
                headers["X-Process-Time"] = f"{time.perf_counter() - start:.6f}"
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            info.status = 499  # nginx's "client closed request"; nobody is left to answer
        except Exception:
            if response_started:
                raise
            log.exception("unhandled error in request %s", info.id)
            info.error = INTERNAL_ERROR
            self.metrics.count_error(INTERNAL_ERROR, "http")
            response = JSONResponse(error_body(INTERNAL_ERROR, INTERNAL_DETAIL), status_code=500)
            await response(scope, receive, send_with_headers)
        finally:
            self.metrics.in_flight.dec()
            # Metrics and log count the whole exchange; X-Process-Time could only hold the
            # time to the first byte, as headers go out before the body.
            seconds = time.perf_counter() - start
            route = _route_label(scope)
            self.metrics.observe_request(route, scope["method"], info.status, seconds)
            access_log.info(_log_line(info, scope["method"], route, seconds))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _route_label(scope: Scope) -> str:
    """The route template, never the raw path: ids and Gradio file paths stay out of labels."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path in ROUTES:  # the mounted Gradio app has none of these paths
        return path
    return UI_ROUTE


def _log_line(info: RequestInfo, method: str, route: str, seconds: float) -> str:
    entry: dict[str, Any] = {
        "request_id": info.id,
        "method": method,
        "route": route,
        "status": info.status,
        "duration_ms": round(seconds * 1000, 2),
    }
    if info.error:
        entry["error"] = info.error
    if info.result_id:
        entry["result_id"] = info.result_id
    if info.timings_ms:
        entry["stages_ms"] = {
            k: round(v, 1) for k, v in info.timings_ms.items() if k in (*STAGES, "total")
        }
    return json.dumps(entry, separators=(",", ":"))


class _BackendStatus:
    """``backend_availability`` is cheap but not free; /health must stay in the microseconds."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._checked = -math.inf
        self._value: dict[str, dict[str, Any]] = {}

    def get(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if now - self._checked > HEALTH_CACHE_S:
            self._value = {
                name: {"available": status.available, "reason": status.reason}
                for name, status in backend_availability(self.config).items()
            }
            self._checked = now
        return self._value


def _options(fields: dict[str, str]) -> Options:
    unknown = sorted(set(fields) - set(FORM_FIELDS))
    if unknown:
        raise OptionError(f"Unknown form field {unknown[0]!r}. Allowed: file, {', '.join(FORM_FIELDS)}.")
    defaults = Options()
    try:
        seed = int(fields["seed"]) if fields.get("seed") else defaults.seed
    except ValueError as exc:
        raise OptionError("The seed must be a whole number, e.g. 42.") from exc
    try:
        height = float(fields["height_mm"]) if fields.get("height_mm") else None
    except ValueError as exc:
        raise OptionError("height_mm must be a number of millimetres, e.g. 120.") from exc
    # The pipeline's own checks, so that HTTP, CLI and UI refuse the same values the same way.
    colors = check_colors(fields["colors"]) if fields.get("colors") else defaults.colors
    palette = parse_palette(fields["palette"]) if fields.get("palette") else None
    return Options(
        template=fields.get("template") or defaults.template,
        style=fields.get("style") or defaults.style,
        backend=fields.get("backend") or None,
        seed=seed,
        height_mm=height,
        colors=colors,
        palette=palette,
    )


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def error_response(request: Request, exc: ToonforgeError) -> JSONResponse:
    """The single place where a Toonforge error becomes an HTTP response."""
    retry = retry_after_s(exc)
    headers = {"Retry-After": str(retry)} if retry is not None else None
    return _error_json(request, exc.code, exc.detail, http_status(exc), headers)


def _error_json(
    request: Request, code: str, detail: str, status: int, headers: dict[str, str] | None
) -> JSONResponse:
    """Log, count and answer an error (Toonforge's own or the framework's)."""
    info = request.scope.get(SCOPE_KEY)
    if info is not None:
        info.error = code
    _runtime(request).metrics.count_error(code, "http")
    return JSONResponse(error_body(code, detail), status_code=status, headers=headers)


def create_app(
    config: Config,
    demo: Any = None,
    *,
    runtime: Runtime | None = None,
    purge_interval_s: float | None = None,
    **gradio_kwargs: Any,
) -> FastAPI:
    """The web app: the API routers and, if given, ``demo`` (a ``gr.Blocks``) mounted at "/".

    ``runtime`` (job pool, limits, store, metrics) must be the one ``demo`` was built with, so
    that the UI and the API share it; without a demo it defaults to a new one for ``config``.
    ``gradio_kwargs`` go to ``gr.mount_gradio_app`` (theme, css, allowed_paths...).
    """
    if runtime is None:
        if demo is not None:
            raise ValueError("create_app(config, demo) needs runtime=<the runtime demo was built with>")
        runtime = Runtime(config)
    if runtime.config != config:
        raise ValueError("the runtime was built with a different config")
    app = FastAPI(
        title="Toonforge",
        version=runtime.version,
        lifespan=_lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    app.state.backends = _BackendStatus(config)
    app.state.backends.get()  # warm: the first check imports modules
    app.state.purge_interval_s = purge_interval_s or max(1.0, min(60.0, config.result_ttl_s / 4))
    app.add_middleware(RequestMiddleware, runtime=runtime)
    app.add_exception_handler(ToonforgeError, _toonforge_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(status_routes)
    app.include_router(result_routes)
    if demo is not None:
        import gradio as gr  # only here: the API alone does not need gradio

        gradio_kwargs.setdefault("max_file_size", config.max_upload_bytes)
        # Mounted last: "/" matches everything, so the API routes above must come first.
        gr.mount_gradio_app(app, demo, path="/", **gradio_kwargs)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    runtime.start()
    purger = asyncio.create_task(_purge_periodically(runtime, app.state.purge_interval_s))
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


# --------------------------------------------------------------------------- error handlers


async def _toonforge_error(request: Request, exc: ToonforgeError) -> JSONResponse:
    return error_response(request, exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        return error_response(request, NotFoundError("No such endpoint. See /api/docs."))
    code = {405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return _error_json(request, code, str(exc.detail), exc.status_code, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(request, OptionError(f"Malformed request: {exc.errors()[0]['msg']}."))


# --------------------------------------------------------------------------- routes

status_routes = APIRouter()  # what the server is and how it does: never touches the job pool
result_routes = APIRouter()  # photos in, figurines out


@status_routes.get("/health")
async def health(request: Request) -> JSONResponse:
    """Liveness and what this server can do. Never touches the job pool."""
    runtime = _runtime(request)
    jobs = runtime.jobs
    return JSONResponse(
        {
            "status": "ok",
            "version": runtime.version,
            "uptime_s": round(runtime.uptime_s, 1),
            "backends": request.app.state.backends.get(),
            "queue": {
                "workers": jobs.workers,
                "mode": runtime.mode,
                "running": jobs.running,
                "waiting": jobs.waiting,
                "capacity": jobs.capacity,
            },
        }
    )


@status_routes.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 once a job would run at full speed (workers warm, or the Ray replicas up
    and reachable), 503 until then and while the Ray cluster is lost. /health stays liveness."""
    runtime = _runtime(request)
    is_ready = runtime.ready
    return JSONResponse(
        {"ready": is_ready, "mode": runtime.mode},
        status_code=200 if is_ready else 503,
        headers=None if is_ready else {"Retry-After": "1"},
    )


@status_routes.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = _runtime(request).metrics.render()
    return Response(body, media_type=content_type)


@result_routes.post("/api/upload", openapi_extra=UPLOAD_OPENAPI)
async def upload(request: Request) -> JSONResponse:
    """Photo in (multipart field ``file``), figurine out: ids, report and artifact URLs."""
    runtime = _runtime(request)
    config = runtime.config
    runtime.jobs.check_capacity()  # when full, say so before receiving megabytes
    form = await read_upload(request, config.max_upload_bytes)
    options = _options(form.fields)
    resolve_options(options, config)  # bad options fail here, before taking a queue slot
    generated = await runtime.generate(form.file, options, interface="http")
    result = generated.result
    info = request_info(request)
    info.result_id, info.timings_ms = generated.id, result.timings_ms
    report = result.report()
    artifacts = {
        key: _public_url(request, "result_file", result_id=generated.id, name=name)
        for key, name in ARTIFACTS.items()
    }
    return JSONResponse({"id": generated.id, **report, "artifacts": artifacts})


def _public_url(request: Request, route: str, **params: str) -> str:
    """The URL of ``route`` as the client can reach it. Behind the Spaces proxy the request
    arrives over plain HTTP for an internal address, so the proxy's ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` name the public origin (as Gradio reads them for its own URLs)."""
    url = request.url_for(route, **params)
    if not _runtime(request).config.on_spaces:
        return str(url)
    proto = _first(request.headers.get("x-forwarded-proto"))
    host = _first(request.headers.get("x-forwarded-host"))
    return str(url.replace(scheme=proto or url.scheme, netloc=host or url.netloc))


def _first(header: str | None) -> str:
    """The first entry of a comma-separated forwarding header (the outermost proxy's)."""
    return (header or "").split(",")[0].strip()


@result_routes.get("/api/results/{result_id}/{name}", name="result_file")
async def result_file(request: Request, result_id: str, name: str) -> StreamingResponse:
    """One file of a result, while it lives (``result_ttl_s``)."""
    runtime = _runtime(request)
    media_type = MEDIA_TYPES.get(name)
    path = runtime.store.file(result_id, name) if media_type else None
    gone = NotFoundError(
        f"No such result file. Results are kept {runtime.config.result_ttl_s // 60} minutes; "
        "upload the photo again."
    )
    if path is None:
        raise gone
    try:
        # An open handle keeps the bytes readable even if a purge deletes the file now.
        handle = open(path, "rb")  # noqa: SIM115 - closed by _read_chunks
    except FileNotFoundError:
        raise gone from None
    headers = {
        "Content-Length": str(os.fstat(handle.fileno()).st_size),
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    if name in DOWNLOADS:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return StreamingResponse(_read_chunks(handle), media_type=media_type, headers=headers)


async def _purge_periodically(runtime: Runtime, interval_s: float) -> None:
    """Expire results on a timer too, so that an idle server still frees its disk. The first
    purge runs at startup: results an earlier process left (on a Space's persistent volume,
    say) go as soon as their TTL is over, not one interval later."""
    while True:
        try:
            await asyncio.to_thread(runtime.purge)
        except OSError:
            log.exception("purging results failed; will retry")
        await asyncio.sleep(interval_s)
