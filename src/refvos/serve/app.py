"""The ASGI application of ``refvos serve`` (Starlette): routes, the body deadline, admission,
and the guard every response passes through.

Endpoints:

- ``GET /`` the page (``static/index.html``); ``GET /static/<file>`` its script and style.
- ``GET /healthz`` ``{"status": "ok", "active": n, "workers": w, "queue": q, "served", "refused", "failed"}``.
- ``GET /api/info`` the model and the server's limits; ``max_seconds`` and ``budget`` say how
  ``max_work`` was set (measured at start from a time budget, or given).
- ``POST /api/segment`` ``multipart/form-data`` with ``expression`` (repeatable) and either
  ``image`` (one picture; a multi-frame GIF / TIFF / WebP is treated as a video), ``video`` (one
  file) or several ``frames`` files; or ``application/json`` ``{"expression": str |
  "expressions": [str], "image": base64 | "video": base64 | "frames": [base64], "filename"}``
  (base64 may be a ``data:`` URL). Answers as :func:`refvos.serve.render.render`.

Every error is JSON ``{"error": message, "status": code}``: 400 bad input, 403 cross-site
request, 404, 405, 408 body too slow, 411 no length, 413 too large (an upload over ``max_bytes``,
or a request asking for more work than ``max_work``: then with ``"budget"`` and ``"asked"``, in
pixels of work, see :mod:`refvos.serve.budget`), 503 busy, 500 a bug (logged, never shown). Every response carries a Content-Security-Policy, ``X-Frame-Options: DENY`` and
``X-Content-Type-Options: nosniff``; requests whose ``Host`` is not an allowed name (DNS
rebinding) are refused, and so are POSTs whose ``Origin`` is not the server's own (``null``, another
port or name: :func:`same_origin`).

A request body is read before the request is admitted: it must arrive whole within
``body_timeout`` seconds and fit in ``max_bytes``, and all bodies being received together fit in
``max_buffered_bytes``. Only then does the request take one of ``workers + queue`` places.
"""

from __future__ import annotations

import json
import logging
import time
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import RefVOSError
from .budget import MeasuredBudget, WorkBudgetError
from .decoding import safe_name
from .limits import Limits
from .parsing import parse_form, parse_json, read_form
from .pool import BusyError, WorkerPool
from .render import render

log = logging.getLogger("refvos.serve")

STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def host_name(value: str) -> str:
    """``"Example.org:80"`` / ``"[::1]:8080"`` / ``"http://x:1"`` -> ``"example.org"`` / ``"::1"`` / ``"x"``."""
    value = value.strip().lower().rpartition("://")[2].split("/", 1)[0]
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_origin(origins: list[str], host: str) -> bool:
    """Whether a request's ``Origin`` header(s) name the server itself: exactly one, equal to
    ``http://`` or ``https://`` and the ``Host`` the request was sent to (port included). ``null``
    (a sandboxed frame, a ``file:`` page), another port or another name is another origin."""
    if len(origins) != 1:
        return False
    origin, host = origins[0].strip().lower(), host.strip().lower()
    return origin in (f"http://{host}", f"https://{host}")


class Guard:
    """ASGI middleware: Host / Origin check, one framing rule h11 leaves to applications (no
    Content-Length beside Transfer-Encoding), security headers on every response, and an access
    log line with control characters escaped."""

    def __init__(self, app, allowed_hosts: set[str]) -> None:
        self.app = app
        self.allowed = allowed_hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_guarded(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        *[(k, v) for k, v in SECURITY_HEADERS if k not in names],
                    ],
                }
            await send(message)

        headers = {}
        for k, v in scope["headers"]:
            headers.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
        refusal = self.refusal(headers, scope["method"])
        try:
            if refusal is not None:
                await refusal(scope, receive, send_guarded)
            else:
                await self.app(scope, receive, send_guarded)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info(
                "%s %s %s %d %.0fms",
                client[0],
                safe_name(scope["method"], 16),
                safe_name(scope.get("path", ""), 200),
                status,
                (time.perf_counter() - start) * 1000,
            )

    def refusal(self, headers: dict[str, list[str]], method: str) -> Response | None:
        hosts = headers.get("host", [])
        if len(hosts) != 1 or host_name(hosts[0]) not in self.allowed:
            shown = safe_name(hosts[0] if hosts else "(none)", 80)
            return error_response(
                400,
                f"Host {shown} is not served here (allowed: {', '.join(sorted(self.allowed))}; "
                "start the server with --allowed-host NAME to add one)",
                {"Connection": "close"},
            )
        origins = headers.get("origin", [])
        if method not in ("GET", "HEAD") and origins and not same_origin(origins, hosts[0]):
            return error_response(
                403,
                f"cross-site request from {safe_name(origins[0], 80)} refused: "
                "only the server's own page may post",
            )
        if "transfer-encoding" in headers and "content-length" in headers:
            return error_response(
                400,
                "Content-Length and Transfer-Encoding together are refused",
                {"Connection": "close"},
            )
        return None


class BodyBudget:
    """Bytes of request bodies being received, all requests together, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


def create_app(
    pool: WorkerPool,
    model_info: dict | None = None,
    allowed_hosts: set[str] | None = None,
    measured: MeasuredBudget | None = None,
) -> Any:
    """The ASGI app: Starlette routes inside :class:`Guard`. ``measured``: how ``max_work`` was
    measured (None: given as a number of pixels)."""
    limits: Limits = pool.limits
    budget = BodyBudget(limits.max_buffered_bytes)
    model_info = model_info or {}

    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return error_response(404, f"no such file: {safe_name(name)}")
        data = resources.files("refvos.serve").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC_FILES[name])

    async def page(request: Request) -> Response:
        return static("index.html")

    async def static_file(request: Request) -> Response:
        return static(request.path_params["name"])

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "active": pool.active,
                "workers": limits.workers,
                "queue": limits.queue,
                "served": pool.served,
                "refused": pool.refused,
                "failed": pool.failed,
            }
        )

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "model": model_info,
                "max_bytes": limits.max_bytes,
                "max_pixels": limits.max_pixels,
                "max_size": limits.max_size,
                "max_frames": limits.max_frames,
                "max_work": limits.max_work,
                "workers": limits.workers,
                "queue": limits.queue,
                "max_seconds": measured.max_seconds if measured else None,
                "budget": {"measured": True, **measured.to_json()}
                if measured
                else {"measured": False},
            }
        )

    async def read_body(request: Request, length: int) -> bytes | Response:
        chunks, received = [], 0
        try:
            with anyio.fail_after(limits.body_timeout):
                async for chunk in request.stream():
                    if not chunk:
                        continue
                    if received + len(chunk) > length:
                        return error_response(
                            400,
                            "request body is longer than its Content-Length",
                            {"Connection": "close"},
                        )
                    if not budget.take(len(chunk)):
                        pool.count("refused")
                        return error_response(
                            503,
                            "server busy receiving other uploads; try again in a moment",
                            {"Retry-After": "2", "Connection": "close"},
                        )
                    received += len(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            return error_response(
                408,
                f"request body did not arrive within {limits.body_timeout:g} s "
                f"({received:,} of {length:,} bytes)",
                {"Connection": "close"},
            )
        except ClientDisconnect:
            return error_response(
                400, "client went away before the body arrived", {"Connection": "close"}
            )
        finally:
            budget.give(received)
        if received != length:
            return error_response(400, f"request body ended after {received:,} of {length:,} bytes")
        return b"".join(chunks)

    async def discard_body(request: Request, length: int) -> None:
        """Read and drop a refused body (up to 4x the limit, within the body deadline) so the
        client reads the answer instead of a connection reset; nothing is kept."""
        if length > 4 * limits.max_bytes:
            return
        with anyio.move_on_after(limits.body_timeout):
            try:
                async for _ in request.stream():
                    pass
            except ClientDisconnect:
                pass

    async def segment(request: Request) -> Response:
        value = request.headers.get("content-length")
        if value is None:
            return error_response(411, "Content-Length header required", {"Connection": "close"})
        length = int(value)  # h11 has checked it is one run of digits
        if length > limits.max_bytes:
            await discard_body(request, length)
            return error_response(
                413,
                f"upload is {length:,} bytes, more than this server's limit of "
                f"{limits.max_bytes:,} bytes",
                {"Connection": "close"},
            )
        body = await read_body(request, length)
        if isinstance(body, Response):
            return body
        ctype = request.headers.get("content-type", "")
        try:
            with pool.admit():
                if ctype.startswith("multipart/form-data"):
                    parts = await read_form(ctype, body, limits)
                    del body
                    req = await pool.call(parse_form, parts, limits)
                elif ctype.startswith("application/json") or not ctype:
                    req = await pool.call(parse_json, body, limits)
                else:
                    return error_response(
                        400,
                        f"unsupported Content-Type {safe_name(ctype, 80)!r}: "
                        "send multipart/form-data or application/json",
                    )
                start = time.perf_counter()
                doc = await pool.run(lambda predictor: render(predictor, req, limits))
        except BusyError as e:
            return error_response(503, str(e), {"Retry-After": "2"})
        except WorkBudgetError as e:
            return JSONResponse(
                {"error": str(e), "status": 413, "budget": e.budget, "asked": e.asked},
                status_code=413,
            )
        except RefVOSError as e:
            return error_response(400, str(e))
        doc["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
        pool.count("served")
        return Response(json.dumps(doc), media_type="application/json")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {
            404: f"no such page: {safe_name(request.url.path)}",
            405: f"method {safe_name(request.method, 16)} not allowed here",
        }.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        pool.count("failed")
        log.error("request %s failed", safe_name(request.url.path), exc_info=exc)
        return error_response(500, "internal error; see the server log")

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET", "HEAD"]),
            Route("/index.html", page, methods=["GET", "HEAD"]),
            Route("/static/{name:path}", static_file, methods=["GET", "HEAD"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/api/info", info, methods=["GET", "HEAD"]),
            Route("/api/segment", segment, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    hosts = {h.lower().strip("[]") for h in (allowed_hosts or set())} | set(LOOPBACK_HOSTS)
    return Guard(app, hosts)
