"""Pictures for people: mask overlays with their expression, animated GIFs, training curves."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .io import atomic_open

OVERLAY_COLOR = (255, 40, 40)
GT_COLOR = (40, 220, 40)


def _contour(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` that touch the background (4-neighbourhood)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    expression: str | None = None,
    color: tuple[int, int, int] = OVERLAY_COLOR,
    alpha: float = 0.5,
    gt: np.ndarray | None = None,
) -> Image.Image:
    """The image with ``mask`` tinted in ``color`` (and its outline), the optional ground-truth
    outline in green, and the expression written in a band under the picture.

    image: RGB uint8 ``(H, W, 3)``; mask, gt: bool ``(H, W)``.
    """
    if image.shape[:2] != mask.shape:
        raise ValueError(f"overlay: image {image.shape[:2]} and mask {mask.shape} differ in size")
    out = image.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = out[m] * (1 - alpha) + np.array(color, np.float32) * alpha
    out[_contour(m)] = color
    if gt is not None:
        out[_contour(gt.astype(bool))] = GT_COLOR
    picture = Image.fromarray(out.round().astype(np.uint8))
    if not expression:
        return picture
    return caption(picture, expression)


def caption(picture: Image.Image, text: str) -> Image.Image:
    """``picture`` with ``text`` written in a white band below it (wrapped to the width)."""
    font = ImageFont.load_default()
    chars = max(8, picture.width // 7)
    lines = textwrap.wrap(text, chars)[:4] or [""]
    band = 14 * len(lines) + 6
    canvas = Image.new("RGB", (picture.width, picture.height + band), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, picture.height + 3 + 14 * i), line, fill=(0, 0, 0), font=font)
    return canvas


def save_image(picture: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PIL image atomically; the format follows the suffix."""
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    with atomic_open(path, "wb") as f:
        picture.save(f, format=fmt)
    return path


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float = 6.0) -> Path:
    """Write frames as a looping animated GIF, atomically."""
    if not frames:
        raise ValueError("save_gif: no frames")
    path = Path(path)
    with atomic_open(path, "wb") as f:
        frames[0].save(
            f, format="GIF", save_all=True, append_images=list(frames[1:]), duration=int(1000 / fps), loop=0
        )
    return path


def plot_curves(series: dict[str, Sequence[tuple[float, float]]], path: str | os.PathLike, xlabel: str, title: str) -> Path:
    """A line chart PNG of named ``(x, y)`` series (e.g. loss per iteration), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return path
