"""Released models by name: fetched from a loopback mirror into an empty cache, loaded, checked
by SHA-256 on every later use; a redirect, a cut transfer, changed bytes, no network."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from refvos.checkpoint import save_checkpoint
from refvos.cli import main
from refvos.errors import CheckpointError, InputError
from refvos.hub import RELEASED, resolve
from refvos.hub.cache import hash_path, recorded_hash, sha256_file
from refvos.hub.download import DownloadError
from refvos.predictor import Predictor
from tests.helpers import make_mixed_model, rgb


class _Mirror(http.server.BaseHTTPRequestHandler):
    """``/files/NAME``: the file; ``/redirect/NAME``: 302 to it; ``/cut/NAME``: the full length
    announced, half the bytes sent, then the connection closed."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.requests.append(self.path)
        _, route, name = self.path.split("/", 2)
        data = self.files.get(name)
        if data is None:
            self.send_error(404)
            return
        if route == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/files/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if route == "cut":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


@pytest.fixture
def mirror(monkeypatch, tmp_path):
    """A loopback HTTP server; ``REFVOS_HOME`` is an empty cache. Yields the server's base URL."""
    _Mirror.files, _Mirror.requests = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> tuple[bytes, torch.nn.Module]:
    """A tiny network's checkpoint (standing in for a released file) and the network."""
    model = make_mixed_model().eval()
    path = save_checkpoint(tmp_path_factory.mktemp("released") / "m.pth", model)
    return path.read_bytes(), model


def _cache_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache"
    return (
        sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        if root.exists()
        else []
    )


def test_download_into_empty_cache_then_load_then_refuse_changed_bytes(
    mirror, model_bytes, tmp_path, monkeypatch, capsys
):
    data, model = model_bytes
    _Mirror.files["refvos-refcoco.pth"] = data
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", f"{mirror}/files/")
    predictor = Predictor.from_pretrained("refcoco", device="cpu", precision="fp32")
    target = tmp_path / "cache" / "checkpoints" / "refvos-refcoco.pth"
    assert _cache_files(tmp_path) == [
        "checkpoints/refvos-refcoco.pth",
        "checkpoints/refvos-refcoco.pth.sha256",
    ]
    assert target.read_bytes() == data and recorded_hash(target) == sha256_file(target)
    image = rgb(40, 56)
    expected = Predictor(model, device="cpu", precision="fp32").predict(image, "the red circle")
    assert np.array_equal(predictor.predict(image, "the red circle"), expected)
    # the released file's token limit comes from the registry
    assert predictor.model.config.max_tokens == RELEASED["refcoco"].max_tokens
    # a second use reads the cache: no request
    _Mirror.requests.clear()
    assert resolve.resolve_checkpoint("refcoco") == str(target)
    assert _Mirror.requests == []

    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    target.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256") as err:
        Predictor.from_pretrained("refcoco", device="cpu")
    assert "\n" not in str(err.value) and "refvos download refcoco" in str(err.value)
    # the CLI: one line, status 2, before the image is even read
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                "refcoco",
                "--image",
                str(tmp_path / "x.png"),
                "--expression",
                "a",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "SHA-256" in lines[0]


def test_download_follows_a_redirect(mirror, model_bytes, tmp_path, monkeypatch):
    _Mirror.files["refvos-davis.pth"] = model_bytes[0]
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", f"{mirror}/redirect")
    path = resolve.download("davis", progress=False)
    assert path.read_bytes() == model_bytes[0]
    assert _Mirror.requests == ["/redirect/refvos-davis.pth", "/files/refvos-davis.pth"]


def test_a_cut_transfer_leaves_nothing_that_looks_complete(
    mirror, model_bytes, tmp_path, monkeypatch
):
    _Mirror.files["refvos-a2d.pth"] = model_bytes[0]
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", f"{mirror}/cut")
    with pytest.raises(DownloadError) as err:
        resolve.download("a2d", progress=False)
    message = str(err.value)
    assert "\n" not in message and RELEASED["a2d"].drive_url in message
    assert str(tmp_path / "cache" / "checkpoints" / "refvos-a2d.pth") in message
    assert _cache_files(tmp_path) == []  # no file, no hash, no partial file


def test_a_file_that_is_not_a_checkpoint_is_refused_and_not_kept(mirror, tmp_path, monkeypatch):
    _Mirror.files["refvos-refcoco.pth"] = b"<html>quota exceeded</html>"
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", f"{mirror}/files")
    with pytest.raises(CheckpointError, match="text file"):
        resolve.download("refcoco", progress=False)
    assert _cache_files(tmp_path) == []


def test_offline_without_mirror_is_one_line_naming_the_drive_url_and_the_path(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("REFVOS_WEIGHTS_URL", raising=False)
    # no network: every HTTPS request goes to a proxy that is not there
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DownloadError) as err:
        resolve.download("refcoco+", progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert "https://drive.google.com/file/d/1HIM3xHkL2Z1rCnnA6OF3r8SmroL7EoQy/view" in message
    assert str(tmp_path / "cache" / "checkpoints" / "refvos-refcocoplus.pth") in message
    assert _cache_files(tmp_path) == []


def test_a_hand_downloaded_file_is_checked_once_and_its_hash_recorded(
    monkeypatch, tmp_path, model_bytes
):
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", str(tmp_path / "nowhere"))
    target = tmp_path / "cache" / "checkpoints" / "refvos-refcoco-a2d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(model_bytes[0])
    assert resolve.download("refcoco-a2d") == target
    assert recorded_hash(target) == sha256_file(target)
    # a hand-placed file that is not a checkpoint is refused and gets no hash
    other = tmp_path / "cache" / "checkpoints" / "refvos-davis.pth"
    other.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        resolve.download("davis")
    assert not hash_path(other).exists()


def test_a_local_folder_mirror(monkeypatch, tmp_path, model_bytes):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "refvos-refcoco.pth").write_bytes(model_bytes[0])
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", f"file://{folder}")
    assert resolve.download("refcoco").read_bytes() == model_bytes[0]
    with pytest.raises(DownloadError, match="refvos-davis.pth"):
        resolve.download("davis")


def _bert_zip(folder_name: str) -> bytes:
    """A zip of a tiny BERT written by transformers' save_pretrained."""
    import tempfile

    from transformers import BertConfig, BertModel

    from tests.helpers import TINY_TEXT_CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        BertModel(BertConfig(**TINY_TEXT_CONFIG)).save_pretrained(Path(tmp) / folder_name)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for p in sorted((Path(tmp) / folder_name).iterdir()):
                z.write(p, f"{folder_name}/{p.name}")
        return buf.getvalue()


def test_a_released_bert_unpacks_to_a_folder_the_text_encoder_loader_accepts(monkeypatch, tmp_path):
    from refvos.modeling.text_encoder import load_pretrained_text_encoder

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "bert_pretrained_refcoco.zip").write_bytes(_bert_zip("bert_pretrained_refcoco"))
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", str(folder))
    path = resolve.resolve_text_encoder("bert-refcoco")
    assert Path(path) == tmp_path / "cache" / "bert" / "bert-refcoco"
    encoder, text_config = load_pretrained_text_encoder(path)
    assert text_config["hidden_size"] == 64
    # a BERT is not a RefVOS model, nor the other way round
    with pytest.raises(InputError, match="--ck_bert"):
        resolve.resolve_checkpoint("bert-refcoco")
    with pytest.raises(InputError, match="--checkpoint"):
        resolve.resolve_text_encoder("refcoco")


def test_unknown_names_and_existing_paths():
    with pytest.raises(InputError, match="download --list"):
        resolve.load_model("no-such-model")
    assert (
        resolve.resolve_checkpoint("no/such/file.pth") == "no/such/file.pth"
    )  # the loader's error


def test_a_local_file_wins_over_a_released_name_and_a_plain_folder_does_not(
    tmp_path, monkeypatch, model_bytes
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", str(tmp_path / "mirror"))
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "refvos-davis.pth").write_bytes(model_bytes[0])
    (tmp_path / "davis").mkdir()  # a data folder of the same name
    assert resolve.resolve_checkpoint("davis") == str(
        tmp_path / "cache" / "checkpoints" / "refvos-davis.pth"
    )
    (tmp_path / "refcoco").write_bytes(model_bytes[0])  # a file of the same name
    assert resolve.resolve_checkpoint("refcoco") == "refcoco"
