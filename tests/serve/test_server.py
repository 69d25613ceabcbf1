"""HTTP hardening of ``refvos serve`` on loopback: slow clients cannot starve it, framing tricks
and the server's own errors get JSON, every response carries the security headers, Host / Origin
are checked, hostile bodies get 400 (never 500), control characters never reach the log."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
import urllib.request

import pytest

from refvos.serve import Limits
from tests.helpers import (
    flat_gif,
    gif_with_huge_second_frame,
    make_tiny_model,
    multipart,
    png_bytes,
    post_files,
    post_json,
    request,
    running_server,
    tiff_pages,
    tiff_with_bad_second_page,
)


@pytest.fixture(scope="module")
def model():
    return make_tiny_model().eval()


@pytest.fixture(scope="module")
def server(model):
    limits = Limits(
        workers=1, queue=1, max_bytes=2 * 2**20, max_size=64, header_timeout=3.0, body_timeout=4.0
    )
    with running_server(model, limits, drain_timeout=10, allowed_hosts={"refvos.lan"}) as srv:
        yield srv


def raw(server, data: bytes, timeout: float = 20) -> tuple[int, dict, bytes]:
    """Send raw bytes, read to EOF: (status, headers lower-cased, body)."""
    with socket.create_connection(server.server_address, timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = s.makefile("rb").read()
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def check_security_headers(headers) -> None:
    get = {k.lower(): v for k, v in headers.items()}.get
    assert "frame-ancestors 'none'" in get("content-security-policy", "")
    assert get("x-frame-options") == "DENY" and get("x-content-type-options") == "nosniff"
    assert "python" not in get("server", "").lower() and "uvicorn" not in get("server", "").lower()


def test_security_headers_on_pages_and_errors(server):
    for path, code in (("/", 200), ("/healthz", 200), ("/nope", 404)):
        status, _, headers = request(server.url + path)
        assert status == code
        check_security_headers(dict(headers.items()))
    status, doc, headers = request(server.url + "/api/segment")  # GET on a POST route
    assert status == 405 and doc["status"] == 405
    check_security_headers(dict(headers.items()))


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nContent-Length: 7\r\n",  # conflicting lengths (h11 refuses)
        b"Content-Length: 5\r\ncontent-length: 5\r\n",  # repeated, equal (the protocol refuses)
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",  # smuggling shape (the app refuses)
        b"X-Bad Header: 1\r\n",  # malformed header line (h11 refuses)
    ],
)
def test_framing_tricks_get_json_400(server, head):
    status, headers, body = raw(
        server, b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\nhello"
    )
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["status"] == 400
    check_security_headers(headers)


@pytest.mark.parametrize("lengths", [b"{n}, {n}", b"{n},{n}", b"{n}\r\nContent-Length: {n}"])
def test_repeated_content_length_is_refused_even_when_the_body_is_valid(server, lengths):
    """``Content-Length: 18, 18`` (h11 merges equal values into one) is refused as documented,
    with a body the server would otherwise answer."""
    body = json.dumps({"image": base64.b64encode(png_bytes()).decode(), "expression": "x"}).encode()
    head = lengths.replace(b"{n}", str(len(body)).encode())
    status, headers, reply = raw(
        server,
        b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + head + b"\r\n\r\n" + body,
    )
    assert status == 400 and "repeated Content-Length" in json.loads(reply)["error"]


def test_host_and_origin_checks(server):
    port = server.server_address[1]
    status, headers, body = raw(
        server, b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    assert (
        status == 400
        and "evil.example" in json.loads(body)["error"]
        and "--allowed-host" in json.loads(body)["error"]
    )
    for host in (b"localhost:%d" % port, b"refvos.lan", b"[::1]:%d" % port):
        status, _, _ = raw(
            server, b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
        assert status == 200, host
    body, ctype = multipart([("image", "p.png", png_bytes()), ("expression", "", "x")])
    req = urllib.request.Request(
        server.url + "/api/segment",
        data=body,
        method="POST",
        headers={"Content-Type": ctype, "Origin": "http://evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 403 and "cross-site" in json.loads(e.value.read())["error"]
    other_port = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"
    for origin in (
        "null",
        "http://localhost",
        other_port,
        "file://",
        f"http://evil.example:{port}",
    ):
        req.headers["Origin"] = origin  # a sandboxed frame, another local page or port: refused
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=60)
        assert e.value.code == 403 and "cross-site" in json.loads(e.value.read())["error"], origin
    req.headers["Origin"] = server.url
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
    del req.headers["Origin"]  # not a browser (curl, scripts): no Origin, served
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    "body,words",
    [
        (b"[" * 100_000 + b"]" * 100_000, "not acceptable JSON"),
        (b'{"expression": "x", "image": ' + b"9" * 5000 + b"}", "not acceptable JSON"),
    ],
)
def test_hostile_json_is_400(server, body, words):
    status, doc, _ = request(server.url + "/api/segment", body, "application/json")
    assert status == 400 and words in doc["error"]


def test_hostile_uploads_are_400_without_paths(server):
    cases = [
        ([("image", "a\x00b.png", b"junk"), ("expression", "", "x")], "a?b.png"),
        (
            [("video", "f.mp4", tiff_pages([(13300, 13300)], "float32")), ("expression", "", "x")],
            "13300x13300",
        ),
        ([("image", "bomb.gif", gif_with_huge_second_frame()), ("expression", "", "x")], "frame 1"),
        ([("video", "v.mp4", b"\x00" * 64), ("expression", "", "x")], "v.mp4"),
    ]
    for fields, words in cases:
        status, doc, _ = post_files(server.url, fields)
        assert status == 400 and words in doc["error"], doc
        assert "/tmp" not in doc["error"] and "refvos-serve" not in doc["error"]
    status, doc, _ = post_json(
        server.url,
        {
            "image": base64.b64encode(png_bytes()).decode(),
            "expression": "x",
            "filename": "q\x00.png",
        },
    )
    assert status == 200, doc


@pytest.mark.parametrize("defect", ["compression", "width"])
def test_tiff_with_a_corrupt_second_page_is_400_not_500(server, defect, caplog):
    data = tiff_with_bad_second_page(defect)
    with caplog.at_level(logging.ERROR, logger="refvos.serve"):
        for field in ("image", "video"):
            status, doc, _ = post_files(
                server.url, [(field, "t.tif", data), ("expression", "", "x")]
            )
            assert status == 400 and "t.tif frame 1 is truncated or corrupt" in doc["error"], doc
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_request_over_the_work_budget_is_413_with_the_budget_and_the_work_asked(server):
    """A 0.5 MB GIF of 48 frames at 2048 x 2048 with 8 expressions: refused from its headers
    (the decoded pixels alone are over budget at this server's --max-size 64)."""
    data = flat_gif(48, 2048, 2048)
    exprs = [("expression", "", f"thing {i}") for i in range(8)]
    budget = server.pool.limits.max_work
    status, doc, _ = post_files(server.url, [("image", "clip.gif", data), *exprs])
    assert status == 413 and doc["budget"] == budget and doc["asked"] > budget, doc
    assert f"more than the budget of {budget:,}" in doc["error"] and "8 expressions" in doc["error"]
    status, doc, _ = post_json(
        server.url,
        {
            "video": base64.b64encode(data).decode(),
            "filename": "c.gif",
            "expressions": [f"thing {i}" for i in range(8)],
        },
    )
    assert status == 413 and doc["asked"] > doc["budget"]
    status, doc, _ = post_files(
        server.url, [("image", "small.gif", flat_gif(4, 40, 48)), *exprs[:2]]
    )
    assert status == 200 and doc["num_frames"] == 4 and len(doc["results"]) == 2
    assert (doc["width"], doc["height"]) == (48, 40)


def test_many_parts_refused_by_the_parser(server):
    """40,000 empty parts (the CPU amplification of a hand-written parser): 400 from the part cap."""
    boundary = "b"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="n"\r\n\r\n\r\n'.encode()
    body = part * 40_000 + f"--{boundary}--\r\n".encode()
    status, doc, _ = request(
        server.url + "/api/segment", body, f"multipart/form-data; boundary={boundary}"
    )
    assert status == 400 and "Too many fields" in doc["error"]
    assert request(server.url + "/healthz")[1]["active"] == 0


def test_log_lines_escape_control_characters(server, caplog):
    with caplog.at_level(logging.INFO, logger="refvos.serve"):
        request(server.url + "/x%0aFAKE%20200%1b[31m")
        for _ in range(100):  # the line is written once the response has gone out
            lines = [r.getMessage() for r in caplog.records if r.name == "refvos.serve"]
            if any("FAKE" in m for m in lines):
                break
            time.sleep(0.1)
    assert any("/x?FAKE 200?[31m" in m for m in lines), lines
    assert not any("\n" in m or "\x1b" in m for m in lines)


def test_slow_clients_do_not_starve_a_legitimate_request(server):
    """8 loopback clients trickle one byte every 0.3 s (4 in their headers, 4 in a body) against
    1 worker + 1 queue place: a real request is still answered (200) within 10 s; the slow ones
    are dropped at their deadlines (408 JSON for a body)."""
    stop = threading.Event()
    replies: list[bytes] = []

    def trickle(head: bytes, drip: bytes) -> None:
        with socket.create_connection(server.server_address, timeout=30) as s:
            try:
                s.sendall(head)
                while not stop.is_set():
                    s.sendall(drip)
                    time.sleep(0.3)
            except OSError:
                pass
            s.settimeout(10)
            try:
                replies.append(s.recv(4096))
            except OSError:
                replies.append(b"")

    header_head = b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body_head = header_head + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    threads = [threading.Thread(target=trickle, args=(header_head, b"X")) for _ in range(4)]
    threads += [threading.Thread(target=trickle, args=(body_head, b" ")) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        body, ctype = multipart([("image", "p.png", png_bytes()), ("expression", "", "the thing")])
        req = urllib.request.Request(
            server.url + "/api/segment", data=body, headers={"Content-Type": ctype}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # the bound the issue asks for
            assert resp.status == 200 and json.loads(resp.read())["results"]
        time.sleep(server.pool.limits.body_timeout + 1.0)  # every slow client passed its deadline
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert sum(b" 408 " in r.split(b"\r\n", 1)[0] and b'"error"' in r for r in replies) >= 4, (
        replies
    )
    assert request(server.url + "/healthz")[1]["active"] == 0


@pytest.mark.slow
def test_server_peak_memory_under_bombs():
    """A server in a fresh process, warmed up by one real request, answers a GIF with a huge second
    frame, a multi-page TIFF bomb and a float TIFF sent as .mp4 (each under 20 MB, as multipart and as
    base64 JSON) with 400, and its peak RSS rises by less than 1 GB."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    script = textwrap.dedent("""
        import base64, json, resource, sys
        sys.path.insert(0, sys.argv[1])
        from refvos.serve import Limits, make_server
        from tests.helpers import make_tiny_model
        from tests.helpers import gif_with_huge_second_frame, tiff_pages
        from tests.helpers import png_bytes, post_files, post_json
        srv = make_server(make_tiny_model().eval(), "127.0.0.1", 0, Limits(max_size=64), device="cpu",
                          precision="fp32")
        srv.start()
        assert post_files(srv.url, [("image", "p.png", png_bytes()), ("expression", "", "x")])[0] == 200
        bombs = [("image", "a.gif", gif_with_huge_second_frame()),
                 ("image", "b.tif", tiff_pages([(40, 48), (13300, 13300)])),
                 ("video", "c.mp4", tiff_pages([(13300, 13300)], "float32"))]
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        statuses = []
        for field, name, data in bombs:
            assert len(data) <= 20 * 2**20
            statuses.append(post_files(srv.url, [(field, name, data), ("expression", "", "x")])[0])
            doc = {field: base64.b64encode(data).decode(), "filename": name, "expression": "x"}
            statuses.append(post_json(srv.url, doc)[0])
        rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        srv.stop()
        print(json.dumps({"statuses": statuses, "rise_kb": rise}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(repo)],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PYTHONPATH": f"{repo / 'src'}:{repo}",
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["statuses"] == [400] * 6, out
    assert out["rise_kb"] < 1024 * 1024, out


def test_torch_compile_never_runs_inside_a_request(model, monkeypatch):
    """80 frames of one size over two requests (past any frame count) compile nothing; --warmup
    compiles its size at start, and a request of another size runs eagerly."""
    import torch

    from refvos.serve import make_server

    shapes = []

    def fake_compile(fn, **kw):
        def compiled(*args):
            shapes.append((fn.__name__, tuple(args[0].shape)))
            return fn(*args)

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    limits = Limits(max_size=64, max_frames=48)
    exprs = [("expression", "", "x")]
    with running_server(model, limits) as srv:
        for _ in range(2):
            status, doc, _ = post_files(srv.url, [("image", "c.gif", flat_gif(40, 24, 32)), *exprs])
            assert status == 200 and doc["num_frames"] == 40
    assert shapes == []
    srv = make_server(
        model, "127.0.0.1", 0, limits, device="cpu", precision="fp32", warmup=[(24, 32)]
    )
    warmed = list(shapes)
    assert ("encode", (1, 3, 24, 32)) in warmed and ("encode", (4, 3, 24, 32)) in warmed
    srv.start()
    try:
        status, _, _ = post_files(srv.url, [("image", "c.gif", flat_gif(8, 24, 32)), *exprs])
        assert status == 200
        assert len(shapes) > len(warmed)  # the warmed size ran compiled
        before = len(shapes)
        status, _, _ = post_files(srv.url, [("image", "d.gif", flat_gif(8, 40, 48)), *exprs])
        assert status == 200 and len(shapes) == before  # another size: eager, no compile
    finally:
        srv.stop(drain_timeout=10)


@pytest.mark.slow
def test_largest_request_within_the_budget_raises_peak_memory_by_less_than_1gb():
    """In a fresh process, at --max-size 256 with a budget of 15 million pixels of work: 12 frames
    of 1024 x 1024 with one expression (12.8 million, within it) are answered, streamed frame by
    frame, and the peak RSS rises by less than 1 GB; with 8 expressions (18.9 million) the same
    upload is refused (413)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    script = textwrap.dedent("""
        import json, resource, sys
        sys.path.insert(0, sys.argv[1])
        from refvos.serve import Limits, make_server
        from tests.helpers import flat_gif, make_tiny_model, png_bytes, post_files
        srv = make_server(make_tiny_model().eval(), "127.0.0.1", 0, Limits(max_size=256, max_work=15_000_000),
                          device="cpu", precision="fp32")
        srv.start()
        assert post_files(srv.url, [("image", "p.png", png_bytes()), ("expression", "", "x")])[0] == 200
        data = flat_gif(12, 1024, 1024)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        status, doc, _ = post_files(srv.url, [("image", "a.gif", data), ("expression", "", "x")])
        rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        refused = post_files(srv.url, [("image", "a.gif", data)] + [("expression", "", "x")] * 8)[0]
        srv.stop()
        print(json.dumps({"status": status, "frames": doc.get("num_frames"), "refused": refused, "rise_kb": rise}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(repo)],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PYTHONPATH": f"{repo / 'src'}:{repo}",
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["frames"] == 12 and out["refused"] == 413, out
    assert out["rise_kb"] < 1024 * 1024, out


class TimedPredictor:
    """A real predictor whose ``predict_all`` also advances a simulated clock: 0.5 s for the
    backbone and 0.25 s per expression (the server measures its budget on that clock)."""

    def __init__(self, inner, clock: list[float]) -> None:
        self.inner, self.clock = inner, clock
        self.max_size = inner.max_size

    def predict_all(self, image, expressions):
        self.clock[0] += 0.5 + 0.25 * len(expressions)
        return self.inner.predict_all(image, expressions)

    def iter_video_all(self, *args, **kwargs):
        return self.inner.iter_video_all(*args, **kwargs)


def test_time_budget_is_measured_at_start_and_refuses_more_work_before_decoding(
    model, monkeypatch, caplog
):
    """max_seconds=10 at --max-size 64 on the simulated clock: one expression on the 64 x 64 noise
    frame takes 0.75 s for 2 x 64^2 pixels of work (two take 1 s: 8 would take 2.5 s for 9 x 64^2,
    a lower rate), so max_work = 10 x 8192 / 0.75 = 109,226: in Limits, /api/info and the log.
    A GIF of 8 frames of 64 x 64 with 8 expressions (294,912, far within the fixed default) is
    refused with 413 from its headers; with one expression (65,536) it is answered."""
    from refvos.predictor import Predictor
    from refvos.serve.budget import DEFAULT_MAX_WORK

    clock = [0.0]
    limits = Limits(max_size=64)
    factory = lambda: TimedPredictor(  # noqa: E731
        Predictor(model, device="cpu", precision="fp32", max_size=64, compile=False), clock
    )
    with (
        caplog.at_level(logging.INFO, logger="refvos.serve"),
        running_server(
            model, limits, predictor_factory=factory, max_seconds=10.0, clock=lambda: clock[0]
        ) as srv,
    ):
        assert srv.pool.limits.max_work == 109_226
        assert (
            "budget: 109,226 pixels of work = 10 s measured at 192 s per 1024x1024-equivalent frame"
            in caplog.text
        )
        status, info, _ = request(srv.url + "/api/info")
        assert status == 200 and info["max_work"] == 109_226 and info["max_seconds"] == 10.0
        assert info["budget"]["measured"] and info["budget"]["measured_side"] == 64
        assert info["budget"]["measured_seconds"] == {"1": 0.75, "2": 1.0}
        data = flat_gif(8, 64, 64)
        exprs = [("expression", "", f"thing {i}") for i in range(8)]
        with monkeypatch.context() as m:
            m.setattr(
                "refvos.serve.decoding.pil_frames",
                lambda *a, **k: pytest.fail("decoded before the budget check"),
            )
            status, doc, _ = post_files(srv.url, [("image", "clip.gif", data), *exprs])
        assert status == 413 and (doc["budget"], doc["asked"]) == (109_226, 8 * 9 * 64 * 64), doc
        assert doc["asked"] < DEFAULT_MAX_WORK
        status, doc, _ = post_files(srv.url, [("image", "clip.gif", data), exprs[0]])
        assert status == 200 and doc["num_frames"] == 8, doc


def test_without_max_seconds_nothing_is_measured(model, monkeypatch):
    """A server given a pixel budget (make_server without max_seconds, as ``--max-work``) keeps it
    and reports it as not measured."""
    monkeypatch.setattr(
        "refvos.serve.server.measure_budget", lambda *a, **k: pytest.fail("measured")
    )
    with running_server(model, Limits(max_size=64, max_work=5000)) as srv:
        status, info, _ = request(srv.url + "/api/info")
    assert status == 200 and info["max_work"] == 5000 and info["max_seconds"] is None
    assert info["budget"] == {"measured": False}


def test_auto_backend_never_converts_a_per_size_network_inside_requests(r101_model):
    """refvos_lite (EfficientNet's "same" padding) would be converted by OpenVINO once per image
    size, inside a request: ``auto`` keeps it on PyTorch; a size-generic ResNet network and an
    explicit backend are left as given."""
    from refvos.serve.server import serving_backend

    lite = make_tiny_model()
    assert serving_backend("auto", lite) == "torch"
    assert (
        serving_backend("openvino", lite) == "openvino"
        and serving_backend("torch", lite) == "torch"
    )
    assert serving_backend("auto", r101_model) == "auto"
