"""From two-class logits to masks and scores, shared by the predictor, the evaluator and the demo.

The logits come from :meth:`refvos.modeling.RefVOS.decode`, already upsampled to the image
(:func:`upsampled_prediction`: at the head's resolution, upsampled here one map at a time). A
:class:`Prediction` is one expression's result on one picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


def foreground_mask(logits: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, 2, H, W)`` -> bool masks ``(B, H, W)``: ``logit1 > logit0``.

    Equal to the original's ``logits.argmax(1)`` (a tie goes to the background), but an
    elementwise comparison: PyTorch's CPU argmax over a size-2 channel dimension takes about
    70 ms for one 854x480 frame (``benchmarks`` measure the predictor with this function).
    """
    return logits[:, 1] > logits[:, 0]


def foreground_probability(logits: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, 2, H, W)`` -> float foreground probabilities ``(B, H, W)`` (softmax's class 1)."""
    return logits.float().softmax(dim=1)[:, 1]


@dataclass
class Prediction:
    """One expression's result on one image.

    ``mask``: bool ``(H, W)``; ``score``: mean foreground probability inside the mask (0 when
    empty); ``area``: mask pixels; ``box``: ``(x0, y0, x1, y1)`` inclusive, or None when empty.
    """

    expression: str
    mask: np.ndarray
    score: float
    area: int
    box: tuple[int, int, int, int] | None

    def to_json(self) -> dict:
        return {
            "expression": self.expression,
            "area": self.area,
            "box": self.box,
            "score": round(self.score, 6),
        }


def prediction(expression: str, mask: torch.Tensor, logits: torch.Tensor) -> Prediction:
    """A :class:`Prediction` from a bool mask ``(H, W)`` and its float logits ``(2, H, W)``."""
    area = int(mask.sum())
    # softmax's class-1 probability, sigmoid(logit1 - logit0), only where the mask is
    score = float(torch.sigmoid((logits[1] - logits[0])[mask]).mean()) if area else 0.0
    mask_np = mask.cpu().numpy()
    return Prediction(expression, mask_np, score, area, mask_box(mask_np))


SCORE_ROWS = 256  # rows of a full-size logit difference turned into probabilities at a time


def upsampled_prediction(
    expression: str, logits: torch.Tensor, size: tuple[int, int]
) -> Prediction:
    """:func:`prediction` of head logits ``(2, h, w)`` upsampled to ``size`` (bilinear,
    ``align_corners=False``, as :meth:`~refvos.modeling.refvos.Segmenter.decode`), holding one
    float map at full size at a time (each channel is upsampled alone, the difference taken in
    place): the mask ``logit1 - logit0 > 0`` is ``logit1 > logit0`` exactly."""
    with torch.inference_mode():
        logits = logits[None].float()
        diff = F.interpolate(
            logits[:, 1:2], size=tuple(size), mode="bilinear", align_corners=False
        )[0, 0]
        diff.sub_(
            F.interpolate(logits[:, 0:1], size=tuple(size), mode="bilinear", align_corners=False)[
                0, 0
            ]
        )
        mask = diff > 0
        area = int(mask.sum())
        total = 0.0
        if area:
            for r in range(
                0, diff.shape[0], SCORE_ROWS
            ):  # sigmoid of the masked values, a band at a time
                rows = slice(r, r + SCORE_ROWS)
                total += float(torch.sigmoid(diff[rows][mask[rows]]).double().sum())
        del diff
        mask_np = mask.cpu().numpy()
    return Prediction(expression, mask_np, total / area if area else 0.0, area, mask_box(mask_np))


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive bounding box ``(x0, y0, x1, y1)`` of a bool mask, None when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
