"""Helpers shared by the tests (fixtures live in ``tests/conftest.py``).

- Tiny networks: :func:`make_tiny_model` (a random ``refvos_lite`` with a 2-layer, 64-wide BERT,
  built in well under a second, offline) and :data:`TINY_MODEL_ARGS`, the same network as
  command-line flags; :func:`train_argv`, a ``refvos train`` command line on synthetic RefCOCO.
- Built-in synthetic data at toy size: :func:`make_tiny_synthetic`.
- Networks whose masks are mixed, and an independent reference. Random weights make a tiny
  network predict one class everywhere (every mask empty), so a comparison of two mask pipelines
  can pass whatever either does to the logits. The network from :func:`make_mixed_model` puts
  foreground on about half the pixels; :func:`reference_mask` computes the released pipeline's
  mask (head logits, bilinear upsampling with ``align_corners=False``, argmax) by hand, without
  the package's ``decode``, so changing the upsampling fails a test.
- :class:`TableModel`: a stand-in network that predicts a given mask per (image, sentence).
- RefVOS's annotation files beside the repository: :func:`shared_dataset_file`.
- Bad (and odd-but-valid) inputs for the reliability and serve tests: constant, truncated or
  oddly-moded pictures, frame folders, GIF / TIFF bombs (:func:`gif_with_huge_second_frame`,
  :func:`tiff_pages`), and :func:`tree` (the files under a folder).
- A ``refvos serve`` server started and stopped around a block: :func:`running_server`; an
  HTTP client for it (:func:`request`, :func:`post_json`, :func:`post_files`, :func:`multipart`)
  and its inputs / outputs (:func:`png_bytes`, :func:`gif_bytes`, :func:`decode_png`).

Imported one way everywhere: ``from tests.helpers import ...``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import struct
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from refvos.media.image import to_tensor
from refvos.modeling.config import BERT_BASE_UNCASED
from refvos.modeling.refvos import Segmenter
from refvos.tokenization import get_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"

# A 2-layer, 64-wide BERT with the real vocabulary: shapes of a real encoder at toy size.
TINY_TEXT_CONFIG = {
    **BERT_BASE_UNCASED,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}
# The network of make_tiny_model as refvos train flags (random weights, nothing downloaded).
TINY_MODEL_ARGS = ["--model", "refvos_lite", "--backbone-weights", "none", "--text-encoder", "none",
                   "--text-config", json.dumps(TINY_TEXT_CONFIG)]
# Side of the synthetic RefCOCO images of the ``refcoco_root`` fixture (and their training crop).
IMAGE_SIZE = 48


def make_tiny_model(max_tokens: int = 20, seed: int = 0):
    """refvos_lite with random weights and a tiny BERT (for fast CPU tests)."""
    from refvos.modeling import build_model

    torch.manual_seed(seed)
    return build_model(
        "refvos_lite", backbone_weights=None, text_encoder=None, text_config=TINY_TEXT_CONFIG, max_tokens=max_tokens
    )


def train_argv(root, out, *extra) -> list[str]:
    """``refvos train`` of the tiny network on the RefCOCO layout at ``root`` (IMAGE_SIZE crops,
    batches of 4, on the CPU) into ``out/run``; ``extra`` flags come last (and win)."""
    return ["train", "--dataset", "refcoco", "--data-root", str(root), *TINY_MODEL_ARGS,
            "--base-size", str(IMAGE_SIZE), "--crop-size", str(IMAGE_SIZE), "-b", "4",
            "--workers", "0", "--device", "cpu", "--output-dir", str(out), "--model_id", "run", *extra]


def make_tiny_synthetic(root: Path) -> dict[str, Path]:
    """The built-in synthetic data at toy size in all three layouts: ``{"refcoco", "davis", "a2d"}`` roots."""
    from refvos.data import synthetic

    return {
        "refcoco": synthetic.make_refcoco(root / "refer", num_images=20, image_size=48),
        "davis": synthetic.make_davis(root / "davis2017", num_videos=5, num_frames=4, image_size=48),
        "a2d": synthetic.make_a2d(root / "a2d", num_videos=5, num_frames=4, image_size=48, annotated_every=2),
    }


def make_mixed_model(seed: int = 0, max_tokens: int = 20):
    """A tiny ``refvos_lite`` (eval mode) whose masks have both classes on random pictures: the
    last convolution's weights scaled, its foreground bias set to the median logit difference."""
    model = make_tiny_model(max_tokens=max_tokens, seed=seed).eval()
    last = model.segmenter.classifier.conv_2
    rng = np.random.default_rng(1)
    ids = torch.tensor([[101, 1996, 2417, 4418, 102]])
    with torch.no_grad():
        last.weight.mul_(40.0)
        diffs = []
        for h, w in ((36, 52), (40, 56), (45, 61)):  # random pictures of the sizes tests use
            image = to_tensor(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))[None]
            logits = model(image, ids, torch.ones_like(ids))
            diffs.append((logits[:, 1] - logits[:, 0]).flatten())
        last.bias[1] -= torch.cat(diffs).median()
    return model


@torch.no_grad()
def reference_logits(model, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                     size: tuple[int, int] | None = None) -> torch.Tensor:
    """Logits ``(B, 2, *size)`` of normalised images ``(B, 3, h, w)`` and token ids / attention
    mask ``(1, T)`` computed from the network's parts (text encoder, backbone, head) with the
    original's upsampling written here: bilinear, ``align_corners=False``, to ``size`` (default:
    the images' own size)."""
    text = model.text_encoder(ids, mask)[0][:, 0]  # last-layer [CLS] state
    segmenter = model.segmenter
    head = segmenter.classifier(segmenter.backbone(images), text.expand(images.shape[0], -1))
    size = tuple(images.shape[-2:]) if size is None else tuple(size)
    return F.interpolate(head.float(), size=size, mode="bilinear", align_corners=False)


def reference_mask(model, image: np.ndarray, expression: str) -> np.ndarray:
    """Bool mask ``(H, W)`` of an RGB uint8 picture ``(H, W, 3)`` by the original ``test.py``'s
    steps: ImageNet normalisation at the picture's own size, argmax of the upsampled logits."""
    ids, mask = get_tokenizer().encode(expression, model.config.max_tokens)
    logits = reference_logits(model, to_tensor(image)[None], ids, mask)
    return (logits[0, 1] > logits[0, 0]).numpy()


def assert_mixed(masks) -> None:
    """Each mask has both foreground and background (so comparing it can fail)."""
    for m in masks:
        m = np.asarray(m)
        assert 0 < m.sum() < m.size, "a test mask is all one class: the comparison could not fail"


def _digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class _Lookup(nn.Module):
    def __init__(self, table: dict) -> None:
        super().__init__()
        self.table = table

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        masks = [self.table[(_digest(f), int(t[0]))] for f, t in zip(features, text)]
        fg = torch.stack([torch.as_tensor(m, dtype=torch.float32) for m in masks])
        return torch.stack([1 - fg, fg], dim=1) * 8 - 4  # logits +-4


class TableModel(nn.Module):
    """A stand-in network that predicts a given mask for each (image, sentence): the RefVOS
    contract (``encode_text``, ``segmenter.encode`` / ``decode``, ``config``).
    ``TableModel.oracle(dataset)`` predicts the ground truth; ``predict`` maps a sample to its
    mask otherwise."""

    def __init__(self, dataset, predict=None) -> None:
        super().__init__()
        self.config = type("Config", (), {"max_tokens": 20, "truncation": "standard", "legacy_truncation": False})()
        self.sentences: dict[tuple, int] = {}
        self.table: dict[tuple, np.ndarray] = {}
        for i in range(len(dataset)):
            s = dataset[i]
            sid = self.sentences.setdefault(tuple(s["input_ids"].tolist()), len(self.sentences))
            mask = (s["mask"] == 1).numpy() if predict is None else predict(s)
            self.table[(_digest(s["image"]), sid)] = mask
        self.segmenter = Segmenter(nn.Identity(), _Lookup(self.table))
        self.text_calls = 0

    def encode_text(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        self.text_calls += len(ids)
        return torch.tensor([[float(self.sentences[tuple(r.tolist())])] for r in ids.cpu()])


def shared_dataset_file(*parts: str) -> Path:
    """A file of RefVOS's released annotation folder, found beside the repository
    (``../shared/refvos-dataset/<parts>``). Missing: the test is skipped on a developer's
    machine, and fails under CI (``CI`` set), where the data must be there."""
    path = SHARED.joinpath("refvos-dataset", *parts)
    if not path.exists():
        message = f"{path} is not there (RefVOS's annotation files, expected beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


# -- bad (and odd-but-valid) inputs ----------------------------------------------------------------
def write_constant_png(path: Path, width: int, height: int, value: int = 0) -> Path:
    """A ``width x height`` 8-bit grayscale PNG of one value, written without ever holding the
    pixels in memory (a 10000 x 10000 one is about 100 kB and takes well under a second)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes([value]) * width  # filter byte 0, then the row
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def rgb(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, mode: str, h: int = 40, w: int = 48) -> Path:
    """An image of PIL ``mode`` (L, RGBA, P, I;16, CMYK, RGB) saved to ``path``."""
    base = Image.fromarray(rgb(h, w))
    if mode == "I;16":
        arr = (np.random.default_rng(1).integers(0, 65536, (h, w))).astype(np.uint16)
        img = Image.fromarray(arr)  # mode I;16
    elif mode == "P":
        img = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        img = base.convert(mode)
    img.save(path)
    return path


def truncated_png(path: Path) -> Path:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb()).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def frames_folder(folder: Path, sizes: list[tuple[int, int]], bad: int | None = None) -> Path:
    """A folder of PNG frames ``00000.png ...`` of the given ``(h, w)``; frame ``bad`` is text."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        path = folder / f"{i:05d}.png"
        if i == bad:
            path.write_text("not a frame")
        else:
            Image.fromarray(rgb(h, w, seed=i)).save(path)
    return folder


def tree(root: Path) -> list[str]:
    """Every path under ``root`` (relative, sorted): to check that nothing was written."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def gif_with_huge_second_frame(side: int = 13300) -> bytes:
    """A two-frame GIF (~1 kB) whose second frame's descriptor claims ``side x side`` pixels (its
    pixel data is a stub): a decoder that trusts the frame allocates ``side**2`` bytes or more."""
    import io

    small = [Image.fromarray(rgb(8, 8, seed=i)) for i in range(2)]
    buf = io.BytesIO()
    small[0].save(buf, format="GIF", save_all=True, append_images=small[1:], duration=100, loop=0)
    data = buf.getvalue()
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, 8, 8)
    second = data.index(descriptor, data.index(descriptor) + 1)
    return data[:second] + b"\x2c" + struct.pack("<HHHH", 0, 0, side, side) + data[second + 9:]


def tiff_pages(pages: list[tuple[int, int]], dtype: str = "uint8", value: float = 0.0) -> bytes:
    """A multi-page, tiled, zlib-compressed TIFF with pages of the given ``(h, w)``, every pixel
    ``value``; written tile by tile, so a 13300 x 13300 float page costs a few MB to build."""
    import io

    import tifffile

    tile = zlib.compress(np.full((512, 512), value, dtype=dtype).tobytes())  # encoded once, reused
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for h, w in pages:
            n = -(-h // 512) * -(-w // 512)
            tif.write((tile for _ in range(n)), shape=(h, w), dtype=dtype, tile=(512, 512),
                      compression="zlib", photometric="minisblack")
    return buf.getvalue()


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
    frames = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for _ in range(n)]
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


def request(url: str, body: bytes | None = None, ctype: str | None = None, method: str | None = None):
    """(status, parsed JSON or bytes, headers)."""
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
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
