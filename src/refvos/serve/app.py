"""The web page and JSON API of ``refvos serve``, on the standard library's HTTP server.

Endpoints:

- ``GET /`` the page (``static/index.html``); ``GET /static/<file>`` its script and style.
- ``GET /healthz`` ``{"status": "ok", "active": n, "workers": w, "queue": q, ...}``.
- ``GET /api/info`` the model and the server's limits.
- ``POST /api/segment`` ``multipart/form-data`` with ``expression`` (repeatable) and either
  ``image`` (one picture; an animated GIF is treated as a video), ``video`` (GIF, or a video file
  when imageio can decode it) or several ``frames`` files; or ``application/json``
  ``{"expression": str | "expressions": [str], "image": base64 | "video": base64 |
  "frames": [base64], "filename": optional}`` (base64 may be a ``data:`` URL). Answers
  ``{"kind": "image" | "video", "width", "height", "results": [...]}`` where each image result has
  ``expression, area, box, score, overlay_png, mask_png`` (base64 PNGs) and each video result
  ``expression, overlay_gif`` (base64) ``, mask_pngs`` (one per frame) and ``frames``
  (``area, box, score`` per frame).

Errors are JSON ``{"error": message}``: 400 bad input, 404, 411 no length, 413 too large,
503 busy (all model workers and queue places taken, or the wait timed out).

Memory is bounded: at most ``workers + queue`` requests are admitted at once (others get 503
before their body is read), bodies over ``max_bytes`` are refused, images over ``max_pixels``
are refused before decoding and every picture is scaled to ``max_size`` on its long side.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.parser
import email.policy
import io
import json
import logging
import queue
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ..errors import InputError, RefVOSError

log = logging.getLogger("refvos.serve")

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
MAX_EXPRESSIONS = 8
MAX_EXPRESSION_CHARS = 1000


class BusyError(Exception):
    """All model workers and queue places are taken."""


@dataclass
class Limits:
    workers: int = 1  # model workers running at once
    queue: int = 4  # admitted requests waiting for a worker
    max_bytes: int = 20 * 1024 * 1024  # request body
    max_pixels: int = 40_000_000  # of an uploaded picture (before scaling)
    max_size: int = 1024  # long side of the processed picture
    max_frames: int = 48  # of a video
    queue_timeout: float = 60.0  # seconds an admitted request waits for a worker
    socket_timeout: float = 30.0  # seconds of client silence before the connection is dropped
    max_connections: int = 64  # open connections (threads); more are answered 503 at once


# -- decoding -------------------------------------------------------------------------------------
def _open_picture(data: bytes, name: str, limits: Limits) -> Image.Image:
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{name} is not a readable image (JPEG, PNG, GIF, WebP, BMP, TIFF...)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name} is not a readable image: {e}") from e
    w, h = img.size
    if w < 1 or h < 1:
        raise InputError(f"{name} has no pixels ({w}x{h})")
    if w * h > limits.max_pixels:
        raise InputError(
            f"{name} is {w}x{h} pixels, more than this server's limit of {limits.max_pixels:,}; downscale it first"
        )
    return img


def _capped(rgb: np.ndarray, max_size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= max_size:
        return rgb
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=3.0))


def _to_rgb(img: Image.Image, name: str, limits: Limits) -> np.ndarray:
    from ..imaging import load_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            rgb = load_image(img)
    except RefVOSError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{name} is truncated or corrupt: {e}") from e
    return _capped(rgb, limits.max_size)


def decode_image(data: bytes, name: str, limits: Limits) -> np.ndarray:
    """Bytes of one picture -> RGB uint8, long side capped at ``limits.max_size``."""
    return _to_rgb(_open_picture(data, name, limits), name, limits)


def decode_upload(data: bytes, name: str, limits: Limits) -> tuple[str, list[np.ndarray]]:
    """An uploaded file -> ``("image", [rgb])`` or, for an animated GIF, ``("video", frames)``."""
    img = _open_picture(data, name, limits)
    if getattr(img, "n_frames", 1) > 1:
        return "video", _gif_frames(img, name, limits)
    return "image", [_to_rgb(img, name, limits)]


def _gif_frames(img: Image.Image, name: str, limits: Limits) -> list[np.ndarray]:
    if img.n_frames > limits.max_frames:
        raise InputError(f"{name} has {img.n_frames} frames, more than this server's limit of {limits.max_frames}")
    try:
        return [_capped(np.asarray(f.convert("RGB")), limits.max_size) for f in ImageSequence.Iterator(img)]
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name} is truncated or corrupt: {e}") from e


def decode_video(data: bytes, name: str, limits: Limits) -> list[np.ndarray]:
    """A video file (GIF with Pillow; mp4 etc. when imageio can decode it) -> frames."""
    suffix = Path(name).suffix.lower()
    if suffix in ("", ".gif") or data[:6] in (b"GIF87a", b"GIF89a"):
        img = _open_picture(data, name, limits)
        return _gif_frames(img, name, limits)
    from ..video import read_video_frames

    with tempfile.TemporaryDirectory(prefix="refvos-serve-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        frames = []
        for frame in read_video_frames(path):
            if len(frames) >= limits.max_frames:
                raise InputError(f"{name} has more frames than this server's limit of {limits.max_frames}")
            h, w = frame.shape[:2]
            if w * h > limits.max_pixels:
                raise InputError(f"{name} frames are {w}x{h} pixels, more than the limit of {limits.max_pixels:,}")
            frames.append(_capped(np.ascontiguousarray(frame), limits.max_size))
        return frames


def b64decode(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"'{field}' must be a base64 string")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"'{field}' is not valid base64") from e


def _png_b64(picture: Image.Image) -> str:
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _gif_b64(pictures: list[Image.Image], fps: float = 6.0) -> str:
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _mask_picture(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def check_expressions(expressions: list[Any]) -> list[str]:
    if not expressions:
        raise InputError("no expression given: type a sentence that describes the object")
    if len(expressions) > MAX_EXPRESSIONS:
        raise InputError(f"at most {MAX_EXPRESSIONS} expressions per request, got {len(expressions)}")
    out = []
    for e in expressions:
        if not isinstance(e, str):
            raise InputError("expression must be a string")
        e = e.strip()
        if not e:
            raise InputError("expression is empty: type a sentence that describes the object")
        if len(e) > MAX_EXPRESSION_CHARS:
            raise InputError(f"expression is {len(e)} characters long, more than the limit of {MAX_EXPRESSION_CHARS}")
        out.append(e)
    return out


# -- the request: parsed input ---------------------------------------------------------------------
@dataclass
class SegmentRequest:
    kind: str  # "image" or "video"
    frames: list[np.ndarray]
    expressions: list[str]


def parse_json(body: bytes, limits: Limits) -> SegmentRequest:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"request body is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise InputError("request body must be a JSON object")
    exprs = doc.get("expressions", doc.get("expression"))
    exprs = [exprs] if isinstance(exprs, str) else (exprs if isinstance(exprs, list) else [])
    name = str(doc.get("filename") or "upload")
    given = [k for k in ("image", "video", "frames") if doc.get(k)]
    if len(given) != 1:
        raise InputError("give exactly one of 'image', 'video' or 'frames' (base64)")
    if given[0] == "image":
        kind, frames = decode_upload(b64decode(doc["image"], "image"), name, limits)
    elif given[0] == "video":
        kind, frames = "video", decode_video(b64decode(doc["video"], "video"), name, limits)
    else:
        items = doc["frames"]
        if not isinstance(items, list):
            raise InputError("'frames' must be a list of base64 images")
        kind, frames = "video", _frames_from_files(
            [(f"frame {i}", b64decode(x, f"frames[{i}]")) for i, x in enumerate(items)], limits)
    return SegmentRequest(kind, frames, check_expressions(exprs))


def _frames_from_files(files: list[tuple[str, bytes]], limits: Limits) -> list[np.ndarray]:
    if len(files) > limits.max_frames:
        raise InputError(f"{len(files)} frames given, more than this server's limit of {limits.max_frames}")
    files = sorted(files, key=lambda f: f[0])  # frames in name order, as a frame folder
    return [decode_image(data, name, limits) for name, data in files]


def parse_multipart(body: bytes, content_type: str, limits: Limits) -> SegmentRequest:
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    if not msg.is_multipart():
        raise InputError("multipart body could not be parsed (missing or wrong boundary)")
    fields: dict[str, list[tuple[str, bytes]]] = {}
    for part in msg.iter_parts():
        field = part.get_param("name", header="content-disposition")
        if not field:
            continue
        filename = part.get_filename() or field
        payload = part.get_payload(decode=True) or b""
        fields.setdefault(str(field), []).append((str(filename), payload))
    exprs = [data.decode("utf-8", errors="replace") for _, data in fields.get("expression", [])]
    given = [k for k in ("image", "video", "frames") if fields.get(k)]
    if len(given) != 1:
        raise InputError("upload exactly one of 'image', 'video' or 'frames' (files)")
    k = given[0]
    if k == "frames" and len(fields["frames"]) == 1:  # one file given as frames: a picture or a GIF
        k, fields["image"] = "image", fields["frames"]
    if k == "image":
        if len(fields["image"]) > 1:
            raise InputError("upload one 'image' file (several pictures go in 'frames')")
        name, data = fields["image"][0]
        kind, frames = decode_upload(data, name, limits)
    elif k == "video":
        name, data = fields["video"][0]
        kind, frames = "video", decode_video(data, name, limits)
    else:
        kind, frames = "video", _frames_from_files(fields["frames"], limits)
    return SegmentRequest(kind, frames, check_expressions(exprs))


# -- the model side --------------------------------------------------------------------------------
class SegmentService:
    """A pool of ``workers`` predictors sharing one network, with admission control.

    ``admit()`` takes one of ``workers + queue`` places (else :class:`BusyError`); ``segment``
    then waits up to ``queue_timeout`` for a free predictor.
    """

    def __init__(self, predictor_factory: Callable[[], Any], limits: Limits) -> None:
        if limits.workers < 1 or limits.queue < 0:
            raise InputError("workers must be at least 1 and queue at least 0")
        self.limits = limits
        self._pool: queue.Queue = queue.Queue()
        for _ in range(limits.workers):
            self._pool.put(predictor_factory())
        self._slots = threading.BoundedSemaphore(limits.workers + limits.queue)
        self._lock = threading.Lock()
        self.active = 0
        self.served = 0
        self.refused = 0
        self.failed = 0

    @contextlib.contextmanager
    def admit(self):
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise BusyError(
                f"server busy: {self.limits.workers} worker(s) and {self.limits.queue} queue place(s) are taken; "
                "try again in a moment"
            )
        with self._lock:
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1
            self._slots.release()

    def segment(self, req: SegmentRequest) -> dict:
        try:
            predictor = self._pool.get(timeout=self.limits.queue_timeout)
        except queue.Empty:
            with self._lock:
                self.refused += 1
            raise BusyError(
                f"server busy: no model worker became free within {self.limits.queue_timeout:g} s; try again"
            ) from None
        try:
            start = time.perf_counter()
            out = self._run(predictor, req)
            out["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
        finally:
            self._pool.put(predictor)
        with self._lock:
            self.served += 1
        return out

    @staticmethod
    def _run(predictor, req: SegmentRequest) -> dict:
        from ..visualize import caption, overlay

        h, w = req.frames[0].shape[:2]
        doc: dict[str, Any] = {"kind": req.kind, "width": int(w), "height": int(h)}
        if req.kind == "image":
            rgb = req.frames[0]
            results = []
            for r in predictor.predict_all(rgb, req.expressions):
                results.append({
                    **r.to_json(), "box": list(r.box) if r.box is not None else None,
                    "overlay_png": _png_b64(overlay(rgb, r.mask)),
                    "mask_png": _png_b64(_mask_picture(r.mask)),
                })
            doc["results"] = results
            return doc
        for i, f in enumerate(req.frames):
            if f.shape != req.frames[0].shape:
                raise InputError(
                    f"video frames differ in size: frame 0 is {w}x{h}, frame {i} is {f.shape[1]}x{f.shape[0]}"
                )
        n = len(req.expressions)
        overlays: list[list[Image.Image]] = [[] for _ in range(n)]
        masks: list[list[str]] = [[] for _ in range(n)]
        stats: list[list[dict]] = [[] for _ in range(n)]
        for rgb in req.frames:
            for i, r in enumerate(predictor.predict_all(rgb, req.expressions)):
                overlays[i].append(overlay(rgb, r.mask))
                masks[i].append(_png_b64(_mask_picture(r.mask)))
                stats[i].append({"area": r.area, "box": list(r.box) if r.box is not None else None,
                                 "score": round(r.score, 6)})
        doc["num_frames"] = len(req.frames)
        doc["results"] = [
            {"expression": e, "overlay_gif": _gif_b64([caption(o, e) for o in overlays[i]]),
             "mask_pngs": masks[i], "frames": stats[i]}
            for i, e in enumerate(req.expressions)
        ]
        return doc


# -- HTTP ------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    server: RefVOSServer
    server_version = "refvos-serve"
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles on a worker thread

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.service.limits.socket_timeout)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.info("%s %s", self.address_string(), format % args)

    # responses
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):
                self.wfile.write(body)

    def _json(self, status: int, doc: dict, extra: dict | None = None) -> None:
        self._send(status, json.dumps(doc).encode("utf-8"), "application/json", extra)

    def _error(self, status: int, message: str, extra: dict | None = None) -> None:
        self._json(status, {"error": message, "status": status}, extra)

    def _discard_body(self, length: int) -> None:
        """Read and drop a body (in small chunks) so the client sees our answer, not a reset."""
        if length > 4 * self.server.service.limits.max_bytes:
            self.close_connection = True
            return
        with contextlib.suppress(OSError):
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)

    # routes
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        service = self.server.service
        if path == "/healthz":
            self._json(200, {"status": "ok", "active": service.active, "workers": service.limits.workers,
                             "queue": service.limits.queue, "served": service.served,
                             "refused": service.refused, "failed": service.failed})
        elif path == "/api/info":
            lim = service.limits
            self._json(200, {"model": self.server.model_info, "max_bytes": lim.max_bytes,
                             "max_pixels": lim.max_pixels, "max_size": lim.max_size,
                             "max_frames": lim.max_frames, "workers": lim.workers, "queue": lim.queue})
        elif path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/"):])
        else:
            self._error(404, f"no such page: {path}")

    def _static(self, name: str) -> None:
        if name not in STATIC_FILES:
            self._error(404, f"no such file: {name}")
            return
        data = resources.files("refvos.serve").joinpath("static", name).read_bytes()
        self._send(200, data, STATIC_FILES[name])

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/api/segment":
            self._discard_body(self._length() or 0)
            self._error(404, f"no such endpoint: POST {path}")
            return
        length = self._length()
        if length is None:
            return
        service = self.server.service
        if length > service.limits.max_bytes:
            self._discard_body(length)
            self._error(413, f"upload is {length:,} bytes, more than this server's limit of "
                             f"{service.limits.max_bytes:,} bytes")
            return
        body_read = False
        try:
            with service.admit():
                body = self._read_body(length)
                body_read = True
                if body is None:
                    return
                req = self._parse(body)
                del body
                doc = service.segment(req)
        except BusyError as e:
            if not body_read:
                self._discard_body(length)
            self._error(503, str(e), {"Retry-After": "2"})
            return
        except RefVOSError as e:
            self._error(400, str(e))
            return
        except Exception:  # a bug, not the user's fault: log it, answer 500, keep serving
            with service._lock:
                service.failed += 1
            log.exception("segment request failed")
            self._error(500, "internal error while segmenting; see the server log")
            return
        self._json(200, doc)

    def _length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            self._error(411, "Content-Length header required")
            return None
        try:
            length = int(value)
            if length < 0:
                raise ValueError
        except ValueError:
            self._error(400, f"bad Content-Length {value!r}")
            return None
        return length

    def _read_body(self, length: int) -> bytes | None:
        try:
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return None
        if len(body) != length:
            self._error(400, f"request body ended after {len(body)} of {length} bytes")
            return None
        return body

    def _parse(self, body: bytes) -> SegmentRequest:
        ctype = self.headers.get("Content-Type", "")
        limits = self.server.service.limits
        if ctype.startswith("multipart/form-data"):
            return parse_multipart(body, ctype, limits)
        if ctype.startswith("application/json") or not ctype:
            return parse_json(body, limits)
        raise InputError(f"unsupported Content-Type {ctype!r}: send multipart/form-data or application/json")


class RefVOSServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a cap on open connections and a draining ``stop()``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 32

    def __init__(self, address: tuple[str, int], service: SegmentService, model_info: dict | None = None) -> None:
        self.service = service
        self.model_info = model_info or {}
        self._connections = threading.BoundedSemaphore(service.limits.max_connections)
        self._open = 0
        self._open_lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._serving = False
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request, client_address) -> None:
        if not self._connections.acquire(blocking=False):
            with contextlib.suppress(OSError):
                body = b'{"error": "server busy: too many open connections", "status": 503}'
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 2\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()
            with self._open_lock:
                self._open -= 1
                self._open_lock.notify_all()

    def serve_forever(self, poll_interval: float = 0.25) -> None:
        self._serving = True
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving = False

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, embedding); ``stop()`` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, name="refvos-serve", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, wait up to ``drain_timeout`` s for open requests, close the socket."""
        if self._serving:
            self.shutdown()
        with self._open_lock:
            self._open_lock.wait_for(lambda: self._open == 0, timeout=drain_timeout)
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout)


def make_server(
    model,
    host: str = "127.0.0.1",
    port: int = 7860,
    limits: Limits | None = None,
    device: str | None = None,
    precision: str = "auto",
    predictor_factory: Callable[[], Any] | None = None,
) -> RefVOSServer:
    """A ready (bound, not yet serving) server for ``model``; ``port=0`` picks a free port."""
    limits = limits or Limits()
    if predictor_factory is None:
        from ..predictor import Predictor

        def predictor_factory():
            return Predictor(model, device=device, precision=precision, max_size=limits.max_size)

    service = SegmentService(predictor_factory, limits)
    info = {}
    config = getattr(model, "config", None)
    if config is not None:
        info = {"variant": getattr(config, "variant", None), "max_tokens": getattr(config, "max_tokens", None)}
    try:
        return RefVOSServer((host, port), service, info)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
