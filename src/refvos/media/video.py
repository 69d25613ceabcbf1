"""Video input: frames from a folder or a video file, read ahead in a background thread."""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import InputError

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


def pil_frames(img, source: str, max_pixels: int) -> Iterator:
    """RGB ``uint8 (H, W, 3)`` arrays of every frame of an opened Pillow image (GIF, multi-page
    TIFF, animated WebP...). Each frame's size is read from its header (``seek``) and checked
    against ``max_pixels`` BEFORE the frame is decoded, so one huge frame after a small first one
    cannot allocate gigabytes. Float frames in [0, 1] are scaled to 0-255 and NaN frames refused
    (:func:`refvos.media.image.load_image`)."""
    import warnings

    from PIL import Image

    from .image import check_pixels, load_image

    n = getattr(img, "n_frames", 1)
    for i in range(n):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.seek(i)
                check_pixels(img.width, img.height, f"{source} frame {i}", max_pixels)
                img.load()
        except InputError:
            raise
        except Image.DecompressionBombError as e:
            raise InputError(f"{source} frame {i} is larger than the limit of {max_pixels:,} pixels") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise InputError(f"{source} frame {i} is truncated or corrupt: {e}") from e
        yield load_image(img)


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

    path = Path(path)
    if path.is_dir():
        yield from list_frames(path)
        return
    if not path.is_file():
        raise InputError(f"video {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(
            f"video {path}: unsupported format {suffix or '(no suffix)'}; give a folder of frames or one of "
            f"{', '.join(VIDEO_SUFFIXES)}"
        )
    from .image import MAX_PIXELS

    yield from video_file_frames(path, f"video {path}", MAX_PIXELS)


def video_file_frames(file: Path | bytes, source: str, max_pixels: int, suffix: str = "") -> Iterator:
    """RGB frames of a video file (a path, or its bytes with its ``suffix``), every frame checked
    against ``max_pixels``; errors name ``source``, never a temporary path. Whatever Pillow
    recognises by its content (GIF, TIFF, WebP ... whatever the file is called) goes through
    :func:`pil_frames`, which checks each frame before decoding it; other files only through
    imageio's PyAV or ffmpeg plugins (named explicitly: imageio's own format guessing would hand a
    renamed TIFF to a reader with no size limit), their stream size checked before reading."""
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from .image import check_pixels

    try:
        with warnings.catch_warnings():  # the size of every frame is checked in pil_frames
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(file) if isinstance(file, bytes) else file)
    except UnidentifiedImageError:
        img = None
    except Image.DecompressionBombError as e:
        raise InputError(f"{source} is larger than the limit of {max_pixels:,} pixels") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{source} cannot be read: {e}") from e
    if img is not None:
        with img:
            yield from pil_frames(img, source, max_pixels)
        return
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise InputError(f"{source}: reading video files needs imageio with PyAV (pip install imageio av); "
                         "or give a folder of frames or a GIF") from e
    errors = []
    for plugin in ("pyav", "FFMPEG"):
        try:
            props = iio.improps(file, plugin=plugin, index=0, extension=suffix or None)
        except ImportError:
            continue
        except Exception as e:  # the plugin could not read the file
            errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
            continue
        h, w = props.shape[:2] if len(props.shape) >= 2 else (0, 0)
        check_pixels(w, h, source, max_pixels)
        try:
            for i, frame in enumerate(iio.imiter(file, plugin=plugin, extension=suffix or None)):
                frame = np.asarray(frame)
                check_pixels(frame.shape[1], frame.shape[0], f"{source} frame {i}", max_pixels)
                yield np.ascontiguousarray(frame[:, :, :3]) if frame.ndim == 3 else np.repeat(frame[:, :, None], 3, 2)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"{source} cannot be decoded: {type(e).__name__}") from e
        return
    if errors:
        raise InputError(f"{source} is not a readable video ({errors[0][:200]})")
    raise InputError(f"{source}: unsupported format (not an image or GIF; other video files need imageio with "
                     "PyAV: pip install imageio av)")
