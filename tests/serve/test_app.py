"""refvos.serve.app: the Starlette app in process (starlette's TestClient): routes, the Host /
Origin guard, security headers, body limits and the JSON answers."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.testclient import TestClient

from refvos.predictor import Predictor
from refvos.serve.app import create_app, host_name, same_origin
from refvos.serve.limits import Limits
from refvos.serve.pool import WorkerPool
from tests.helpers import make_tiny_model, png_bytes


def test_host_names_and_origins():
    assert host_name("Example.org:80") == "example.org"
    assert host_name("[::1]:8080") == "::1"
    assert host_name("http://x:1/path") == "x"
    assert same_origin(["http://127.0.0.1:8000"], "127.0.0.1:8000")
    assert not same_origin(["http://127.0.0.1:9000"], "127.0.0.1:8000")  # another port
    assert not same_origin(["null"], "127.0.0.1:8000")
    assert not same_origin(["http://a", "http://a"], "a")


@pytest.fixture(scope="module")
def client():
    model = make_tiny_model().eval()
    pool = WorkerPool(
        lambda: Predictor(model, device="cpu", precision="fp32", compile=False, max_size=64),
        Limits(max_bytes=200_000),
    )
    with TestClient(create_app(pool, {"variant": "refvos_lite"}, {"testserver"})) as c:
        yield c
    pool.close()


def test_page_info_and_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert page.headers["x-frame-options"] == "DENY" and "content-security-policy" in page.headers
    info = client.get("/api/info").json()
    assert info["model"] == {"variant": "refvos_lite"} and info["max_bytes"] == 200_000
    assert client.get("/static/../secret").status_code == 404


def test_other_hosts_and_cross_site_posts_are_refused(client):
    r = client.get("/", headers={"host": "evil.example"})
    assert r.status_code == 400 and "Host evil.example is not served here" in r.json()["error"]
    r = client.post(
        "/api/segment",
        content=b"{}",
        headers={"origin": "http://evil.example", "content-type": "application/json"},
    )
    assert r.status_code == 403 and "cross-site request" in r.json()["error"]


def test_segment_a_picture_and_the_errors(client):
    body = {"expression": "the dog", "image": base64.b64encode(png_bytes(20, 30)).decode()}
    r = client.post(
        "/api/segment", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["kind"] == "image" and (doc["width"], doc["height"]) == (30, 20)
    assert doc["results"][0]["expression"] == "the dog" and doc["results"][0]["overlay_png"]
    served = client.get("/healthz").json()["served"]
    assert served >= 1
    r = client.post(
        "/api/segment", content=b"x" * 300_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "more than this server's limit" in r.json()["error"]
    r = client.post("/api/segment", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "unsupported Content-Type" in r.json()["error"]
    r = client.post("/api/segment", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
