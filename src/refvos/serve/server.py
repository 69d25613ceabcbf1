"""The HTTP server of ``refvos serve``: uvicorn (h11) running the ASGI app, with the guards
uvicorn leaves to its user: a deadline for a request's headers (a client trickling them is
dropped), a cap on open connections (more are answered 503 at once), and JSON bodies for the
errors uvicorn answers itself (malformed HTTP, duplicate conflicting Content-Length ...).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import InputError
from .app import SECURITY_HEADERS, create_app
from .budget import MeasuredBudget, measure_budget, measure_side
from .limits import MAX_EXPRESSIONS, Limits
from .pool import WorkerPool
from .render import timing_run

log = logging.getLogger("refvos.serve")


def _raw_json_response(status: int, reason: bytes, message: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"error": message, "status": status}).encode()
    head = b"".join(k + b": " + v + b"\r\n" for k, v in SECURITY_HEADERS)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
        % (status, reason, len(body))
        + extra
        + head
        + b"\r\n"
        + body
    )


def protocol_class(limits: Limits) -> type[H11Protocol]:
    """An :class:`H11Protocol` with the header deadline and connection cap of ``limits``."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _head = b""  # the request head received so far (until its blank line)

        def data_received(self, data: bytes) -> None:
            # h11 merges repeated identical Content-Length headers (and a comma list of equal
            # values, "18, 18") into one; a request carrying several is refused here, as a proxy
            # in front could frame it differently.
            if self.conn.their_state is h11.IDLE and len(self._head) < 65536:
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end >= 0:
                    lines = self._head[:end].lower().split(b"\r\n")
                    self._head = b""
                    lengths = [line[15:] for line in lines if line.startswith(b"content-length:")]
                    if len(lengths) > 1 or any(b"," in value for value in lengths):
                        self.send_400_response("repeated Content-Length header")
                        return
            super().data_received(data)

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(
                    _raw_json_response(
                        503,
                        b"Service Unavailable",
                        "server busy: too many open connections",
                        b"retry-after: 2\r\n",
                    )
                )
                transport.close()
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self.conn.our_state is h11.IDLE:  # nothing sent yet on this request
                    self.transport.write(
                        _raw_json_response(
                            408,
                            b"Request Timeout",
                            f"request headers did not arrive within {limits.header_timeout:g} s",
                        )
                    )
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            self._head = b""
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self.transport.write(
                _raw_json_response(400, b"Bad Request", f"malformed HTTP request: {msg}")
            )
            self.transport.close()

    return GuardedH11Protocol


class RefVOSServer:
    """A bound (not yet serving) server: ``serve_forever()`` in the main thread (Ctrl-C / SIGTERM
    stop it, finishing open requests), or ``start()`` / ``stop()`` in a background thread."""

    def __init__(
        self, app: Any, pool: WorkerPool, host: str, port: int, drain_timeout: float = 10.0
    ) -> None:
        self.pool = pool
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as e:
            self._socket.close()
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        self._socket.listen(128)
        self.server_address = self._socket.getsockname()[:2]
        limits = pool.limits
        config = uvicorn.Config(
            app,
            http=protocol_class(limits),
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=max(1, round(limits.header_timeout)),
            limit_concurrency=limits.max_connections
            + 1,  # backstop; the protocol answers the cap in JSON
            timeout_graceful_shutdown=max(1, round(drain_timeout)),
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve until Ctrl-C or SIGTERM (uvicorn handles both when run in the main thread, finishing
        open requests). After a SIGTERM it re-raises the signal to the handler it found: a no-op
        here, so the caller returns normally (Ctrl-C still ends in KeyboardInterrupt)."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: None) if main else None
        try:
            self._server.run(sockets=[self._socket])
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
            self._close()

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, embedding); ``stop()`` ends it."""
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="refvos-serve",
            daemon=True,
        )
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.02)
        return self._thread

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let open requests finish (up to ``drain_timeout`` s), free the port."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout + 5)
        self._close()

    def _close(self) -> None:
        self._socket.close()
        self.pool.close()


def serving_backend(backend: str, model) -> str:
    """The backend the server runs ``model`` on: ``auto`` stays on PyTorch for a network that
    OpenVINO converts once per image size (EfficientNet's "same" padding, see
    :func:`refvos.runtime.openvino_backend.shape_generic`), since a new size would be converted inside a
    request; otherwise ``backend`` as given."""
    from ..runtime.openvino_backend import shape_generic

    if backend == "auto" and not shape_generic(model.segmenter):
        return "torch"
    return backend


def make_server(
    model,
    host: str = "127.0.0.1",
    port: int = 7860,
    limits: Limits | None = None,
    device: str | None = None,
    precision: str = "auto",
    backend: str = "auto",
    int8_model: str | None = None,
    predictor_factory: Callable[[], Any] | None = None,
    allowed_hosts: set[str] | None = None,
    warmup: list[tuple[int, int]] | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] | None = None,
) -> RefVOSServer:
    """A ready (bound, not yet serving) server for ``model``; ``port=0`` picks a free port.
    ``allowed_hosts``: names the ``Host`` header may carry besides the loopback names (and
    ``host`` itself when it is a specific address). The network runs eagerly: ``torch.compile``
    never runs inside a request; ``warmup``, processed picture sizes ``(height, width)``, are
    compiled here, before the server is returned, and run compiled (other sizes eagerly).
    ``max_seconds``: a time budget per request, measured here on a worker's predictor
    (:func:`refvos.serve.budget.measure_budget` with ``clock``, default ``time.perf_counter``) and set
    as ``limits.max_work``; None keeps ``limits.max_work`` as given (nothing measured). It is
    measured with one request running: requests that run together (``workers`` > 1 on one CPU)
    share the machine and each takes longer."""
    limits = (limits or Limits()).check()
    if predictor_factory is None:
        from ..predictor import Predictor

        backend = serving_backend(backend, model)

        def predictor_factory():
            predictor = Predictor(
                model,
                device=device,
                precision=precision,
                max_size=limits.max_size,
                compile=False,
                backend=backend,
                int8_model=int8_model,
            )
            predictor.calibrate()  # at start-up, not on the first request
            if warmup:
                predictor.warm_up(warmup)
            return predictor

    pool = WorkerPool(predictor_factory, limits)
    measured: MeasuredBudget | None = None
    if max_seconds is not None:
        timer = {"clock": clock} if clock is not None else {}
        side = measure_side(limits.max_size)
        log.info(
            "budget: timing requests of a %dx%d frame to turn --max-seconds %g into pixels of work",
            side,
            side,
            max_seconds,
        )
        measured = pool.run_now(
            lambda predictor: measure_budget(
                timing_run(predictor, limits), side, max_seconds, MAX_EXPRESSIONS, **timer
            )
        )
        limits.max_work = measured.max_work
        log.info("%s", measured.describe())
    config = getattr(model, "config", None)
    info = (
        {
            "variant": getattr(config, "variant", None),
            "max_tokens": getattr(config, "max_tokens", None),
        }
        if config is not None
        else {}
    )
    hosts = set(allowed_hosts or ())
    if host not in ("0.0.0.0", "::", ""):
        hosts.add(host)
    return RefVOSServer(create_app(pool, info, hosts, measured), pool, host, port)
