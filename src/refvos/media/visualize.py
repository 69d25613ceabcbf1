"""Pictures for people: mask overlays with their expression, animated GIFs, training curves."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io import atomic_open

# fill colours the overlay chooses from: the one farthest from the object's own mean colour
FILL_COLORS = (
    (230, 25, 75),
    (0, 130, 200),
    (255, 225, 25),
    (145, 30, 180),
    (70, 240, 240),
    (60, 180, 75),
)
GT_COLOR = (40, 220, 40)
FILL_ALPHA = 0.5


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` (bool ``(H, W)``) grown by ``radius`` pixels (a square neighbourhood: what PIL's
    ``MaxFilter(2 * radius + 1)`` gives), as two 1-D passes of shifted ORs: a few bool operations
    per pixel, where PIL's rank filter sorts every window (30 ms of a 427x240 video frame)."""
    if radius <= 0:
        return mask
    out = mask.astype(bool, copy=True)
    for axis in (1, 0):
        src = out.copy()
        n = src.shape[axis]
        for shift in range(1, min(radius, n - 1) + 1):
            ahead = [slice(None)] * 2
            behind = [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            out[tuple(ahead)] |= src[tuple(behind)]
            out[tuple(behind)] |= src[tuple(ahead)]
    return out


def _contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` of the background (the inside band of its outline)."""
    return mask & _dilate(~mask, width)


def line_width(height: int, width: int) -> int:
    """Outline width in pixels at the picture's scale: 1 up to 250 px, 2 at 500 px, ..."""
    return max(1, round(max(height, width) / 250))


def fill_color(image: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    """The colour of :data:`FILL_COLORS` farthest from the mean colour of the masked pixels, so
    that a red object is not tinted red."""
    if not mask.any():
        return FILL_COLORS[0]
    mean = image[mask].reshape(-1, 3).mean(0)
    return max(FILL_COLORS, key=lambda c: float(((np.array(c) - mean) ** 2).sum()))


class VideoFill:
    """One expression's fill colour through a video, chosen once so that it does not flicker:
    :func:`fill_color` of the first frame where the mask is non-empty, kept for every later frame
    (frames before it have nothing to fill). Holds one colour: streaming, memory flat. Use::

        fill = VideoFill()
        pictures = (overlay(rgb, mask, color=fill(rgb, mask)) for rgb, mask in frames)
    """

    def __init__(self) -> None:
        self.color: tuple[int, int, int] | None = None

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
        """The colour for this frame (image RGB uint8 ``(H, W, 3)``, mask bool ``(H, W)``)."""
        if self.color is None and mask.any():
            self.color = fill_color(image, mask.astype(bool))
        return self.color or FILL_COLORS[0]


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    expression: str | None = None,
    color: tuple[int, int, int] | None = None,
    alpha: float = FILL_ALPHA,
    gt: np.ndarray | None = None,
) -> Image.Image:
    """The image with ``mask`` tinted (``color``, default :func:`fill_color`) and outlined in white
    with a black edge outside (readable on any background), the optional ground-truth outline in
    green, and the expression written in a band under the picture (:func:`caption`).

    image: RGB uint8 ``(H, W, 3)``; mask, gt: bool ``(H, W)``.
    """
    if image.shape[:2] != mask.shape:
        raise ValueError(f"overlay: image {image.shape[:2]} and mask {mask.shape} differ in size")
    m = mask.astype(bool)
    color = color or fill_color(image, m)
    out = np.array(image, dtype=np.uint8, copy=True)
    w = line_width(*m.shape)
    ys, xs = np.nonzero(m)
    if ys.size:  # work in the mask's bounding box grown by the outline (a video frame's cost)
        pad = 2 * w + 1
        win = (
            slice(max(0, ys.min() - pad), ys.max() + pad + 1),
            slice(max(0, xs.min() - pad), xs.max() + pad + 1),
        )
        mw, region = m[win], out[win].astype(np.float32)
        region[mw] = region[mw] * (1 - alpha) + np.array(color, np.float32) * alpha
        region[_dilate(mw, 2 * w) & ~_dilate(mw, w)] = (0, 0, 0)  # dark edge outside
        region[_dilate(mw, w) & ~mw | _contour(mw, w)] = (
            255,
            255,
            255,
        )  # white band on the boundary
        out[win] = region.round().astype(np.uint8)
    if gt is not None and gt.any():
        out[_contour(gt.astype(bool), w)] = GT_COLOR
    picture = Image.fromarray(out)
    if not expression:
        return picture
    return caption(picture, expression)


@functools.lru_cache(maxsize=1)
def _font_path() -> str | None:
    """matplotlib's bundled DejaVu Sans (no system fonts needed), found in its package folder
    without importing matplotlib (a third of a second of a prediction's start-up); matplotlib's
    font search if the file is not where matplotlib ships it; None without matplotlib (an
    optional package: Pillow's own font is used then)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if bundled.is_file():
            return str(bundled)
    if spec is None:
        return None
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))


def caption_font(width: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (Pillow's default font without matplotlib) at the picture's scale: about 30
    characters across, 12 px at least."""
    path, size = _font_path(), max(12, round(width / 30))
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _wrap(
    text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int | None = None
) -> list[str]:
    """``text`` in lines that fit ``width`` pixels (a word longer than the width is cut); with
    ``max_lines``, wrapping stops after ``max_lines + 1`` lines (enough to show that text was
    cut). Linear in the text shown: a word is measured a line's worth at a time (every glyph is
    at least a pixel wide), never whole for each line it fills."""
    lines: list[str] = []
    limit = None if max_lines is None else max_lines + 1
    for word in text.split():
        if limit is not None and len(lines) >= limit:
            break
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while len(word) > 1 and (limit is None or len(lines) < limit):
            head = word[: max(1, width) + 1]  # more than fits on a line, if anything does not
            head_width = font.getlength(head)
            if head_width <= width:
                break
            cut = max(1, int(len(head) * width / head_width))
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines if limit is None else lines[:limit]


def caption(picture: Image.Image, text: str, max_lines: int = 4) -> Image.Image:
    """``picture`` with ``text`` in black on a white band below it, in DejaVu Sans sized to the
    picture and wrapped to its width (at most ``max_lines`` lines; an ellipsis marks a cut)."""
    font = caption_font(picture.width)
    margin = max(4, font.size // 3)
    lines = _wrap(text, font, picture.width - 2 * margin, max_lines) or [""]
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + " ...") > picture.width - 2 * margin:
            last = last[:-1]  # make room for the mark (a few characters)
        lines = lines[: max_lines - 1] + [last.rstrip() + " ..."]
    ascent, descent = font.getmetrics()
    step = ascent + descent + font.size // 5
    band = step * len(lines) + 2 * margin
    canvas = Image.new("RGB", (picture.width, picture.height + band), (255, 255, 255))
    canvas.paste(picture.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((margin, picture.height + margin + step * i), line, fill=(0, 0, 0), font=font)
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
            f,
            format="GIF",
            save_all=True,
            append_images=list(frames[1:]),
            duration=int(1000 / fps),
            loop=0,
        )
    return path


def plot_curves(
    series: dict[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike,
    xlabel: str,
    title: str,
) -> Path:
    """A line chart PNG of named ``(x, y)`` series (e.g. loss per iteration), written atomically."""
    from ..deps import require

    require("matplotlib", "plotting training curves").use("Agg")
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
