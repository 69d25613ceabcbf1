"""Uploaded bytes -> RGB frames, with every picture and every frame checked against the server's
limits BEFORE it is decoded (a small first frame cannot hide a huge second one).

Nothing here writes a temporary file, so no error message can reveal a server path; names in
messages are the client's file names with control characters replaced (:func:`safe_name`).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..media.image import check_pixels
from ..media.video import PIL_ERRORS, frame_sizes, pil_frames, video_file_frames
from .budget import check_work, processed_size
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
    size = processed_size(w, h, max_size)
    if size == (w, h):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=3.0))


@dataclass
class Frames:
    """An upload's frames, not yet decoded. ``sizes``: ``(width, height)`` of every frame as its
    header gives it (checked against the pixel and frame limits already), or None for a video
    container whose frames are known only while decoding; :meth:`iter` decodes them one at a
    time."""

    kind: str  # "image" or "video"
    source: str
    sizes: list[tuple[int, int]] | None
    _decode: Callable[[], Iterator[np.ndarray]]

    @classmethod
    def of_arrays(cls, kind: str, arrays: list[np.ndarray], source: str = "frames") -> Frames:
        """Frames already decoded (RGB uint8 ``(H, W, 3)`` arrays), for embedding and tests."""
        return cls(kind, source, [(a.shape[1], a.shape[0]) for a in arrays], lambda: iter(arrays))

    def check_work(self, limits: Limits, expressions: int) -> None:
        """:class:`~refvos.serve.budget.WorkBudgetError` when the frames' known sizes ask for more
        than ``limits.max_work`` (before anything is decoded)."""
        if self.sizes is not None:
            check_work(self.sizes, limits.max_size, expressions, limits.max_work, self.source)

    def iter(self, limits: Limits, expressions: int) -> Iterator[np.ndarray]:
        """RGB uint8 frames ``(H, W, 3)``, long side capped at ``limits.max_size``, one at a time;
        frames of a container of unknown length are charged against ``limits.max_work`` as they
        come (the request stops at the first frame over it)."""
        count, seen = 0, []
        for frame in self._decode():
            count += 1
            if self.sizes is None:
                seen.append((frame.shape[1], frame.shape[0]))
                check_work(seen, limits.max_size, expressions, limits.max_work, self.source)
            yield _capped(frame, limits.max_size)
        if not count:
            raise InputError(f"{self.source} has no frames")


def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise InputError(
            f"{name} is not a readable image (JPEG, PNG, GIF, WebP, BMP, TIFF...)"
        ) from e
    except Image.DecompressionBombError as e:
        raise InputError(f"{name} is larger than this server's pixel limit") from e
    except PIL_ERRORS as e:
        raise InputError(f"{name} is not a readable image: {e}") from e


def _pillow_frames(
    img: Image.Image, data: bytes, name: str, limits: Limits, kind: str | None
) -> Frames:
    """The frames of an opened picture, sized from their headers (one shared count:
    :func:`refvos.media.video.frame_sizes`), every size checked before anything is decoded."""
    with img:
        sizes = frame_sizes(img, name, limits.max_frames, data)
    for i, (w, h) in enumerate(sizes):
        check_pixels(w, h, f"{name} frame {i}" if len(sizes) > 1 else name, limits.max_pixels)

    def decode() -> Iterator[np.ndarray]:
        with _open(data, name) as again:
            yield from pil_frames(again, name, limits.max_pixels, limits.max_frames)

    return Frames(kind or ("video" if len(sizes) > 1 else "image"), name, sizes, decode)


def decode_image(data: bytes, name: str, limits: Limits) -> np.ndarray:
    """Bytes of one picture (its first frame) -> RGB uint8, long side capped at ``limits.max_size``."""
    name = safe_name(name)
    img = _open(data, name)
    with img:
        return _capped(next(iter(pil_frames(img, name, limits.max_pixels))), limits.max_size)


def decode_upload(data: bytes, name: str, limits: Limits) -> Frames:
    """An uploaded file -> its :class:`Frames`: kind "image", or "video" for a multi-frame file
    (animated GIF / WebP, multi-page TIFF)."""
    name = safe_name(name)
    return _pillow_frames(_open(data, name), data, name, limits, None)


def decode_video(data: bytes, name: str, limits: Limits) -> Frames:
    """A video file's bytes -> its :class:`Frames`: anything Pillow recognises by content (GIF,
    TIFF, ..., whatever its name) sized from its headers; other containers through imageio's
    PyAV / ffmpeg readers only (:func:`refvos.media.video.video_file_frames`), frame by frame."""
    name = safe_name(name)
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    try:
        img = _open(data, name)
    except InputError:
        img = None
    if img is not None:
        return _pillow_frames(img, data, name, limits, "video")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return Frames(
        "video",
        name,
        None,
        lambda: video_file_frames(
            data, name, limits.max_pixels, suffix=suffix[:8], max_frames=limits.max_frames
        ),
    )


def frames_from_files(files: list[tuple[str, bytes]], limits: Limits) -> Frames:
    """Several uploaded pictures -> one video's :class:`Frames`, in file-name order (as a frame
    folder), each picture's size read from its header first."""
    if len(files) > limits.max_frames:
        raise InputError(
            f"{len(files)} frames given, more than this server's limit of {limits.max_frames}"
        )
    files = sorted(files, key=lambda f: f[0])
    sizes = []
    for name, data in files:
        name = safe_name(name)
        with _open(data, name) as img:
            check_pixels(img.width, img.height, name, limits.max_pixels)
            sizes.append((img.width, img.height))

    def decode() -> Iterator[np.ndarray]:
        for name, data in files:
            name = safe_name(name)
            with _open(data, name) as img:
                yield next(iter(pil_frames(img, name, limits.max_pixels)))

    return Frames("video", "frames", sizes, decode)
