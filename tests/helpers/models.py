"""Tiny networks for the tests: random ones, ones whose masks are mixed, an independent
reference of the released pipeline's mask, a stand-in that predicts given masks; synthetic data
at toy size."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from refvos.media.image import to_tensor
from refvos.modeling.config import BERT_BASE_UNCASED
from refvos.modeling.refvos import Segmenter
from refvos.tokenization import get_tokenizer

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
TINY_MODEL_ARGS = [
    "--model",
    "refvos_lite",
    "--backbone-weights",
    "none",
    "--text-encoder",
    "none",
    "--text-config",
    json.dumps(TINY_TEXT_CONFIG),
]
# Side of the synthetic RefCOCO images of the ``refcoco_root`` fixture (and their training crop).
IMAGE_SIZE = 48


def make_tiny_model(max_tokens: int = 20, seed: int = 0):
    """refvos_lite with random weights and a tiny BERT (for fast CPU tests)."""
    from refvos.modeling import build_model

    torch.manual_seed(seed)
    return build_model(
        "refvos_lite",
        backbone_weights=None,
        text_encoder=None,
        text_config=TINY_TEXT_CONFIG,
        max_tokens=max_tokens,
    )


def train_argv(root, out, *extra) -> list[str]:
    """``refvos train`` of the tiny network on the RefCOCO layout at ``root`` (IMAGE_SIZE crops,
    batches of 4, on the CPU) into ``out/run``; ``extra`` flags come last (and win)."""
    return [
        "train",
        "--dataset",
        "refcoco",
        "--data-root",
        str(root),
        *TINY_MODEL_ARGS,
        "--base-size",
        str(IMAGE_SIZE),
        "--crop-size",
        str(IMAGE_SIZE),
        "-b",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--output-dir",
        str(out),
        "--model_id",
        "run",
        *extra,
    ]


def make_tiny_synthetic(root: Path) -> dict[str, Path]:
    """The built-in synthetic data at toy size in all three layouts: ``{"refcoco", "davis", "a2d"}`` roots."""
    from refvos.data import synthetic

    return {
        "refcoco": synthetic.make_refcoco(root / "refer", num_images=20, image_size=48),
        "davis": synthetic.make_davis(
            root / "davis2017", num_videos=5, num_frames=4, image_size=48
        ),
        "a2d": synthetic.make_a2d(
            root / "a2d", num_videos=5, num_frames=4, image_size=48, annotated_every=2
        ),
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
def reference_logits(
    model,
    images: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
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

    def visual(self, features: torch.Tensor) -> torch.Tensor:
        """The head's sentence-independent part (here: the image itself, to look it up)."""
        return features

    def decode(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        masks = [self.table[(_digest(f), int(t[0]))] for f, t in zip(visual, text)]
        fg = torch.stack([torch.as_tensor(m, dtype=torch.float32) for m in masks])
        return torch.stack([1 - fg, fg], dim=1) * 8 - 4  # logits +-4

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.decode(self.visual(features), text)


class TableModel(nn.Module):
    """A stand-in network that predicts a given mask for each (image, sentence): the RefVOS
    contract (``encode_text``, ``segmenter.encode`` / ``decode``, ``config``).
    ``TableModel.oracle(dataset)`` predicts the ground truth; ``predict`` maps a sample to its
    mask otherwise."""

    def __init__(self, dataset, predict=None) -> None:
        super().__init__()
        self.config = type(
            "Config", (), {"max_tokens": 20, "truncation": "standard", "legacy_truncation": False}
        )()
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


def record_conv_kernels(monkeypatch) -> list[tuple[int, int]]:
    """Patch ``torch.nn.functional.conv2d`` to append each call's kernel size ``(kh, kw)`` to the
    returned list (``nn.Conv2d`` and its subclasses call it)."""
    seen: list[tuple[int, int]] = []
    conv2d = torch.nn.functional.conv2d

    def recording(x, w, *args):
        seen.append(tuple(w.shape[-2:]))
        return conv2d(x, w, *args)

    monkeypatch.setattr(torch.nn.functional, "conv2d", recording)
    return seen
