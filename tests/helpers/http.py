"""A ``refvos serve`` server started and stopped around a block, and an HTTP client for it
with its inputs and outputs."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image


@contextlib.contextmanager
def running_server(model, limits, drain_timeout: float = 30, **kwargs):
    """``refvos serve``'s server for ``model`` on a free localhost port, stopped on exit
    (``kwargs`` as :func:`refvos.serve.make_server`'s; fp32 on the CPU unless given)."""
    from refvos.serve import make_server

    kwargs = {"device": "cpu", "precision": "fp32", **kwargs}
    server = make_server(model, "127.0.0.1", 0, limits, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop(drain_timeout=drain_timeout)


# -- an HTTP client for refvos serve -------------------------------------------------------------
SERVE_H, SERVE_W = 36, 52  # the serve tests' picture size
HTTP_TIMEOUT = 120


def png_bytes(h=SERVE_H, w=SERVE_W, seed=0, fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def gif_bytes(n=3, h=SERVE_H, w=SERVE_W) -> bytes:
    rng = np.random.default_rng(5)
    frames = [
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for _ in range(n)
    ]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def multipart(fields: list[tuple[str, str, bytes | str]]) -> tuple[bytes, str]:
    """``[(name, filename or "", data)]`` -> (body, content type)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, data in fields:
        out.write(f"--{boundary}\r\n".encode())
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"Content-Disposition: {disp}\r\n".encode())
        if filename:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n")
        out.write(data.encode() if isinstance(data, str) else data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(
    url: str, body: bytes | None = None, ctype: str | None = None, method: str | None = None
):
    """(status, parsed JSON or bytes, headers)."""
    req = urllib.request.Request(
        url, data=body, method=method or ("POST" if body is not None else "GET")
    )
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            status, data, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, data, headers = e.code, e.read(), e.headers
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(data), headers
    return status, data, headers


def post_json(url: str, doc: dict):
    return request(url + "/api/segment", json.dumps(doc).encode(), "application/json")


def post_files(url: str, fields):
    body, ctype = multipart(fields)
    return request(url + "/api/segment", body, ctype)


def decode_png(b64: str) -> Image.Image:
    data = base64.b64decode(b64)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
