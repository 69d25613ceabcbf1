"""Uploaded bytes -> RGB frames, with every picture and every frame checked against the server's
limits BEFORE it is decoded (a small first frame cannot hide a huge second one).

Nothing here writes a temporary file, so no error message can reveal a server path; names in
messages are the client's file names with control characters replaced (:func:`safe_name`).
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..media.video import pil_frames, video_file_frames
from .limits import Limits

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_name(name: object, limit: int = 100) -> str:
    """A client-given name fit for an error message or a log line: control characters (NUL,
    newlines, escapes) replaced by ``?``, at most ``limit`` characters."""
    text = _CONTROL.sub("?", str(name))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _capped(rgb: np.ndarray, max_size: int) -> np.ndarray:
    """Scale so the long side is at most ``max_size`` (uint8 ``(H, W, 3)`` in and out)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_size:
        return rgb
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=3.0))


def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise InputError(f"{name} is not a readable image (JPEG, PNG, GIF, WebP, BMP, TIFF...)") from e
    except Image.DecompressionBombError as e:
        raise InputError(f"{name} is larger than this server's pixel limit") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name} is not a readable image: {e}") from e


def _frame_count(img: Image.Image, name: str, limits: Limits) -> int:
    try:
        n = int(getattr(img, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{name} is truncated or corrupt: {e}") from e
    if n > limits.max_frames:
        raise InputError(f"{name} has {n} frames, more than this server's limit of {limits.max_frames}")
    return n


def decode_image(data: bytes, name: str, limits: Limits) -> np.ndarray:
    """Bytes of one picture (its first frame) -> RGB uint8, long side capped at ``limits.max_size``."""
    name = safe_name(name)
    img = _open(data, name)
    return _capped(next(iter(pil_frames(img, name, limits.max_pixels))), limits.max_size)


def decode_upload(data: bytes, name: str, limits: Limits) -> tuple[str, list[np.ndarray]]:
    """An uploaded file -> ``("image", [rgb])``, or ``("video", frames)`` for a multi-frame file
    (animated GIF / WebP, multi-page TIFF)."""
    name = safe_name(name)
    img = _open(data, name)
    n = _frame_count(img, name, limits)
    frames = [_capped(f, limits.max_size) for f in pil_frames(img, name, limits.max_pixels)]
    return ("video" if n > 1 else "image"), frames


def decode_video(data: bytes, name: str, limits: Limits) -> list[np.ndarray]:
    """A video file's bytes -> frames: anything Pillow recognises by content (GIF, TIFF, ...,
    whatever its name) frame by frame with size checks; other containers through imageio's
    PyAV / ffmpeg readers only (:func:`refvos.media.video.video_file_frames`)."""
    name = safe_name(name)
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    frames = []
    for frame in video_file_frames(data, name, limits.max_pixels, suffix=suffix[:8]):
        if len(frames) >= limits.max_frames:
            raise InputError(f"{name} has more frames than this server's limit of {limits.max_frames}")
        frames.append(_capped(frame, limits.max_size))
    if not frames:
        raise InputError(f"{name} has no frames")
    return frames


def frames_from_files(files: list[tuple[str, bytes]], limits: Limits) -> list[np.ndarray]:
    """Several uploaded pictures -> frames, in file-name order (as a frame folder)."""
    if len(files) > limits.max_frames:
        raise InputError(f"{len(files)} frames given, more than this server's limit of {limits.max_frames}")
    return [decode_image(data, name, limits) for name, data in sorted(files, key=lambda f: f[0])]
