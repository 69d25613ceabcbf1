"""Video input: frames from a folder or a video file, read ahead in a background thread."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import InputError

T = TypeVar("T")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm")


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``items`` while a background thread produces up to ``depth`` items ahead
    (overlaps frame decoding with compute). Exceptions are re-raised in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as e:  # forwarded to the consumer
            q.put(("error", e))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files of a frame folder, in natural (name) order; error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"video folder {folder} does not exist")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise InputError(f"video folder {folder} has no frames (expected {', '.join(FRAME_SUFFIXES)} files)")
    return frames


def read_video_frames(path: str | os.PathLike) -> Iterator:
    """Frames of a folder (paths) or of a video file (RGB arrays). GIF is read with Pillow; other
    containers need imageio with an ffmpeg plugin and give a clear error without it."""
    import numpy as np
    from PIL import Image, ImageSequence

    path = Path(path)
    if path.is_dir():
        yield from list_frames(path)
        return
    if not path.is_file():
        raise InputError(f"video {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        try:
            with Image.open(path) as img:
                for frame in ImageSequence.Iterator(img):
                    yield np.asarray(frame.convert("RGB"))
        except OSError as e:
            raise InputError(f"video {path} cannot be read: {e}") from e
        return
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(
            f"video {path}: unsupported format {suffix or '(no suffix)'}; give a folder of frames or one of "
            f"{', '.join(VIDEO_SUFFIXES)}"
        )
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise InputError(
            f"video {path}: reading {suffix} files needs imageio with ffmpeg (pip install imageio[ffmpeg]); "
            "or give a folder of frames"
        ) from e
    try:
        for frame in iio.imiter(path):
            yield np.asarray(frame)[:, :, :3]
    except Exception as e:
        raise InputError(f"video {path} cannot be decoded: {e}") from e
