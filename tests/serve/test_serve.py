"""``refvos serve`` over real HTTP on 127.0.0.1 (port 0) with a tiny random network: the page,
the JSON API, every bad input's 4xx, and a load test (concurrent requests -> 200 or 503 busy)."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from refvos.cli import main
from refvos.predictor import Predictor
from refvos.serve import Limits, make_server
from tests.helpers import (
    SERVE_H,
    SERVE_W,
    assert_mixed,
    decode_png,
    gif_bytes,
    make_mixed_model,
    png_bytes,
    post_files,
    post_json,
    reference_mask,
    request,
    running_server,
)


@pytest.fixture(scope="module")
def model():
    return make_mixed_model()  # masks with both classes: comparing them can fail


@pytest.fixture(scope="module")
def server(model):
    limits = Limits(
        workers=1,
        queue=3,
        max_bytes=2 * 1024 * 1024,
        max_pixels=250_000,
        max_size=128,
        max_frames=6,
        queue_timeout=60,
    )
    with running_server(model, limits) as srv:
        yield srv


@pytest.fixture
def url(server):
    return server.url


# -- pages ----------------------------------------------------------------------------------------
def test_page_static_and_health(url):
    status, html, headers = request(url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="file"' in html and b'id="expression"' in html and b'id="result"' in html
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, data, headers = request(url + f"/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(ctype) and data
    status, doc, _ = request(url + "/healthz")
    assert status == 200 and doc["status"] == "ok" and doc["workers"] == 1
    status, doc, _ = request(url + "/api/info")
    assert status == 200 and doc["max_size"] == 128 and doc["model"]["variant"]
    for path in ("/nope", "/static/../app.py", "/static/secret.txt"):
        status, doc, _ = request(url + path)
        assert status == 404 and "error" in doc


# -- segmenting -----------------------------------------------------------------------------------
def _check_image_result(r: dict, w: int, h: int) -> None:
    overlay, mask = decode_png(r["overlay_png"]), decode_png(r["mask_png"])
    assert overlay.size == (w, h) and mask.size == (w, h) and mask.mode == "L"
    m = np.asarray(mask) > 127
    assert r["area"] == int(m.sum())
    ys, xs = np.nonzero(m)
    assert r["box"] == (
        None if ys.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    )
    assert 0.0 <= r["score"] <= 1.0


def test_segment_multipart_image(url):
    status, doc, _ = post_files(
        url, [("image", "photo.png", png_bytes()), ("expression", "", "the dog")]
    )
    assert status == 200, doc
    assert doc["kind"] == "image" and (doc["width"], doc["height"]) == (SERVE_W, SERVE_H)
    (r,) = doc["results"]
    assert r["expression"] == "the dog"
    _check_image_result(r, SERVE_W, SERVE_H)


def test_segment_json_two_expressions_same_as_library(url, model):
    data = png_bytes(seed=3, fmt="JPEG")
    status, doc, _ = post_json(
        url,
        {
            "image": "data:image/jpeg;base64," + base64.b64encode(data).decode(),
            "expressions": ["the cat", "a car on the left"],
        },
    )
    assert status == 200, doc
    assert [r["expression"] for r in doc["results"]] == ["the cat", "a car on the left"]
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for r in doc["results"]:
        _check_image_result(r, SERVE_W, SERVE_H)
        expected = reference_mask(model, rgb, r["expression"])  # the original's steps, by hand
        assert_mixed([expected])
        np.testing.assert_array_equal(np.asarray(decode_png(r["mask_png"])) > 127, expected)


def test_large_picture_is_scaled_to_max_size(url):
    status, doc, _ = post_files(
        url, [("image", "big.png", png_bytes(h=200, w=300)), ("expression", "", "x")]
    )
    assert status == 200, doc
    assert (doc["width"], doc["height"]) == (128, 85)
    _check_image_result(doc["results"][0], 128, 85)


def test_segment_gif_and_frames(url):
    status, doc, _ = post_files(
        url, [("image", "clip.gif", gif_bytes(3)), ("expression", "", "the bird")]
    )
    assert status == 200, doc
    assert doc["kind"] == "video" and doc["num_frames"] == 3
    (r,) = doc["results"]
    gif = Image.open(io.BytesIO(base64.b64decode(r["overlay_gif"])))
    assert gif.format == "GIF" and gif.n_frames == 3 and gif.width == SERVE_W
    assert len(r["mask_pngs"]) == len(r["frames"]) == 3
    for b64, f in zip(r["mask_pngs"], r["frames"]):
        m = np.asarray(decode_png(b64)) > 127
        assert m.shape == (SERVE_H, SERVE_W) and f["area"] == int(m.sum())

    frames = [("frames", f"{i:03d}.png", png_bytes(seed=i)) for i in range(2)]
    status, doc, _ = post_files(url, [*frames, ("expression", "", "the bird")])
    assert status == 200 and doc["kind"] == "video" and doc["num_frames"] == 2


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields,words",
    [
        ([("image", "p.png", png_bytes()), ("expression", "", "   ")], "expression is empty"),
        ([("image", "p.png", png_bytes())], "no expression"),
        ([("expression", "", "the dog")], "exactly one of"),
        (
            [("image", "p.png", b"not an image at all"), ("expression", "", "x")],
            "p.png is not a readable image",
        ),
        ([("image", "p.png", png_bytes()[:60]), ("expression", "", "x")], "p.png"),
        ([("image", "p.png", b""), ("expression", "", "x")], "empty"),
        (
            [("image", "huge.png", png_bytes(h=600, w=600)), ("expression", "", "x")],
            "more than the limit",
        ),
        ([("image", "c.gif", gif_bytes(8)), ("expression", "", "x")], "frames, more than"),
        (
            [
                ("frames", "a.png", png_bytes()),
                ("frames", "b.png", png_bytes(h=SERVE_H + 4)),
                ("expression", "", "x"),
            ],
            "differ in size",
        ),
        ([("video", "v.xyz", b"\x00" * 64), ("expression", "", "x")], "unsupported format"),
        ([("image", "p.png", png_bytes()), ("expression", "", "x" * 1001)], "characters long"),
    ],
)
def test_bad_multipart_is_400(url, fields, words):
    status, doc, _ = post_files(url, fields)
    assert status == 400, doc
    assert words in doc["error"]


@pytest.mark.parametrize(
    "body,ctype,words",
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (
            json.dumps({"image": "!!!", "expression": "x"}).encode(),
            "application/json",
            "not valid base64",
        ),
        (
            json.dumps(
                {"image": base64.b64encode(png_bytes()).decode(), "expression": ""}
            ).encode(),
            "application/json",
            "expression is empty",
        ),
        (b"hello", "text/plain", "unsupported Content-Type"),
        (b"--x\r\n", "multipart/form-data; boundary=zzz", "multipart body could not be parsed"),
    ],
)
def test_bad_json_and_types_are_400(url, body, ctype, words):
    status, doc, _ = request(url + "/api/segment", body, ctype)
    assert status == 400, doc
    assert words in doc["error"]


def test_too_large_is_413(url):
    body = b"x" * (2 * 1024 * 1024 + 1)
    status, doc, _ = request(url + "/api/segment", body, "application/json")
    assert status == 413 and "limit" in doc["error"]


def test_missing_length_is_411_and_unknown_post_404(server, url):
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(
            b"POST /api/segment HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n"
        )
        reply = s.makefile("rb").read()
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"411" and b'"error"' in reply
    status, doc, _ = request(url + "/api/other", b"{}", "application/json")
    assert status == 404


# -- load -----------------------------------------------------------------------------------------
def test_concurrent_requests_answered_or_busy(url, server):
    """12 at once against 1 worker + 3 queue places: each is 200 or 503 busy; nothing crashes."""
    image = png_bytes(h=48, w=64)

    def one(i):
        return post_files(
            url, [("image", f"p{i}.png", image), ("expression", "", f"object number {i}")]
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(one, range(12)))
    statuses = [s for s, _, _ in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1
    for status, doc, headers in answers:
        if status == 503:
            assert "busy" in doc["error"] and headers["Retry-After"]
        else:
            _check_image_result(doc["results"][0], 64, 48)
    status, health, _ = request(url + "/healthz")
    assert status == 200 and health["active"] == 0 and health["failed"] == 0
    assert post_files(url, [("image", "p.png", image), ("expression", "", "x")])[0] == 200


class SlowPredictor:
    """Wraps a Predictor: slower, and records how many run at once."""

    running = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, inner):
        self.inner = inner

    def predict_all(self, image, expressions):
        cls = type(self)
        with cls.lock:
            cls.running += 1
            cls.peak = max(cls.peak, cls.running)
        try:
            time.sleep(0.4)
            return self.inner.predict_all(image, expressions)
        finally:
            with cls.lock:
                cls.running -= 1


def test_load_busy_refusals_and_bounded_workers(model):
    """With a slow model, 10 simultaneous requests against 2 workers + 1 queue place: some get
    503 busy at once, at most 2 run the model at a time, and the server is healthy after."""
    limits = Limits(workers=2, queue=1, max_size=64, queue_timeout=60)
    slow = lambda: SlowPredictor(Predictor(model, device="cpu", precision="fp32"))  # noqa: E731
    with running_server(model, limits, predictor_factory=slow) as srv:
        image = png_bytes(h=32, w=32)
        barrier = threading.Barrier(10)

        def one(i):
            barrier.wait(timeout=60)
            return post_files(srv.url, [("image", "p.png", image), ("expression", "", "the thing")])

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(one, range(10)))
        statuses = sorted(s for s, _, _ in answers)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
        assert all("busy" in doc["error"] for s, doc, _ in answers if s == 503)
        assert SlowPredictor.peak <= 2
        status, health, _ = request(srv.url + "/healthz")
        assert (
            health["active"] == 0
            and health["refused"] == statuses.count(503)
            and health["failed"] == 0
        )
        assert post_files(srv.url, [("image", "p.png", image), ("expression", "", "x")])[0] == 200


def test_stop_is_clean_and_frees_the_port(model):
    srv = make_server(model, "127.0.0.1", 0, Limits(max_size=64), device="cpu")
    thread = srv.start()
    host, port = srv.server_address[:2]
    assert request(srv.url + "/healthz")[0] == 200
    start = time.monotonic()
    srv.stop(drain_timeout=10)
    assert time.monotonic() - start < 10 and not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=5).close()


def test_serve_command_bad_arguments(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "missing.pth"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pth" in err[0] and "does not exist" in err[0]
    assert main(["serve", "--checkpoint", "x.pth", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_connection_cap_and_idle_clients(model):
    """Idle connections hold at most ``max_connections`` threads and are dropped after the socket
    header deadline; a connection over the cap gets 503 at once."""
    limits = Limits(max_connections=2, header_timeout=2.0, max_size=64)
    srv = make_server(model, "127.0.0.1", 0, limits, device="cpu")
    srv.start()
    host, port = srv.server_address[:2]
    idle = [socket.create_connection((host, port), timeout=30) for _ in range(2)]
    try:
        time.sleep(0.3)  # let the server accept both
        status, doc, _ = request(srv.url + "/healthz")
        assert status == 503 and "too many open connections" in doc["error"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the idle ones time out and free their places
            time.sleep(0.5)
            status, _, _ = request(srv.url + "/healthz")
            if status == 200:
                break
        assert status == 200
    finally:
        for s in idle:
            s.close()
        srv.stop(drain_timeout=10)
