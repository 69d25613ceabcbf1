"""One expression's masks through a video, drawn as an animated GIF: the one renderer of
``refvos predict --video``, ``refvos serve``, the Gradio demo and ``make demo``.

Each frame is scaled down to a long side of at most ``max_side`` (the mask with nearest
neighbours; full-size pictures are never overlaid), tinted with one colour chosen once for the
video (:class:`~refvos.media.visualize.VideoFill`: no flicker), outlined, captioned with the
expression and appended to a :class:`~refvos.media.gif.GifWriter` (written frame by frame:
memory stays flat in the video's length).
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import BinaryIO

import numpy as np
from PIL import Image

from . import visualize
from .gif import GifWriter


def display_scaled(
    rgb: np.ndarray, mask: np.ndarray, max_side: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """A frame RGB uint8 ``(H, W, 3)`` and its bool mask ``(H, W)`` with the long side at most
    ``max_side`` (None: as they are): the frame bilinear, the mask nearest-neighbour."""
    h, w = rgb.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return rgb, mask
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=2.0)),
        np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST)),
    )


class OverlayGif:
    """``with OverlayGif(path, expression) as gif: gif.add(rgb, mask)`` ... writes the overlaid
    GIF of one expression (``path``: a file or a binary stream, as :class:`GifWriter`)."""

    def __init__(
        self,
        path: str | os.PathLike | BinaryIO,
        expression: str,
        fps: float = 6.0,
        max_side: int | None = None,
    ) -> None:
        self.expression = expression
        self.max_side = max_side
        self.fill = visualize.VideoFill()  # one colour through the video
        self.writer = GifWriter(path, fps=fps)

    def __enter__(self) -> OverlayGif:
        self.writer.__enter__()
        return self

    def add(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        """Append one frame: RGB uint8 ``(H, W, 3)`` and the expression's bool mask ``(H, W)``."""
        small, small_mask = display_scaled(rgb, mask, self.max_side)
        picture = visualize.overlay(small, small_mask, color=self.fill(small, small_mask))
        self.writer.add(visualize.caption(picture, self.expression))

    @property
    def frames(self) -> int:
        return self.writer.frames

    def __exit__(
        self, kind: type | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.writer.__exit__(kind, error, tb)
