"""Helpers shared by the tests: networks whose masks are mixed, and an independent reference.

Random weights make a tiny network predict one class everywhere (every mask empty), so a
comparison of two mask pipelines can pass whatever either does to the logits. The network from
:func:`make_mixed_model` puts foreground on about half the pixels; :func:`reference_mask` computes
the released pipeline's mask (head logits, bilinear upsampling with ``align_corners=False``,
argmax) by hand, without the package's ``decode``, so changing the upsampling fails a test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from refvos.imaging import to_tensor
from refvos.tokenization import get_tokenizer

from .conftest import SHARED, make_tiny_model


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
