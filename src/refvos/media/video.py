"""Video input: frames from a folder or a video file, read ahead in a background thread."""

from __future__ import annotations

import io
import itertools
import os
import queue
import struct
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


# what Pillow raises on a corrupt header or page (a TIFF page of an unknown compression: KeyError;
# one with no width: TypeError; a GIF block cut short: struct.error / IndexError)
def frame_batches(frames: Iterable, batch_size: int, max_pixels: int) -> Iterator[list]:
    """Frames (RGB arrays, all of one size) in lists of ``batch_size``, fewer where a batch would
    hold more than ``max_pixels`` (big frames run in smaller batches, read ahead less); frames are
    read ahead in a thread (:func:`prefetch`). A frame of another size is an :class:`InputError`."""
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return
    batch_size = max(1, min(batch_size, max_pixels // (first.shape[0] * first.shape[1])))
    batch: list = []
    for rgb in itertools.chain([first], prefetch(frames, depth=batch_size)):
        if batch and rgb.shape != batch[0].shape:
            raise InputError(
                f"video frames differ in size: {batch[0].shape[1]}x{batch[0].shape[0]} then "
                f"{rgb.shape[1]}x{rgb.shape[0]}"
            )
        batch.append(rgb)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


PIL_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    KeyError,
    TypeError,
    IndexError,
    struct.error,
)


def _gif_sizes(data: bytes, limit: int) -> list[tuple[int, int]] | None:
    """``(width, height)`` of each frame of GIF bytes, up to ``limit`` frames, from the block
    structure alone (no pixel data decoded: Pillow's ``seek`` decodes every earlier frame). A frame
    is the logical screen, enlarged to a descriptor reaching past it (as Pillow shows it). None
    if the bytes are not a GIF; a stream cut short ends the list there (Pillow stops there too)."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return None
    screen_w, screen_h, packed = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    sizes: list[tuple[int, int]] = []

    def skip_sub_blocks(pos: int) -> int:
        while pos < len(data) and data[pos]:
            pos += data[pos] + 1
        return pos + 1

    while pos < len(data) and len(sizes) < limit:
        block = data[pos]
        if block == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # image descriptor
            x, y, w, h, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            sizes.append((max(screen_w, x + w), max(screen_h, y + h)))
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)  # LZW code size, then the data sub-blocks
        else:  # trailer (0x3B) or anything else: the end
            break
    return sizes


def frame_sizes(
    img, source: str, max_frames: int, data: bytes | None = None
) -> list[tuple[int, int]]:
    """``(width, height)`` of every frame of an opened Pillow image, read from the frame headers
    without decoding any pixels where the format allows it; :class:`InputError` when there are
    more than ``max_frames`` (counted by seeking one frame at a time up to ``max_frames + 1``:
    never Pillow's ``n_frames``, which is quadratic in a TIFF's page count) or a frame header is
    unreadable. GIFs are counted from their bytes ``data`` (``None``: read from ``img.fp``), as
    Pillow's GIF ``seek`` decodes the frames it passes. The image is left at its first frame.

    This one function counts the frames of ``refvos serve`` uploads, ``refvos predict --video``
    and the Gradio demo."""
    import warnings

    from PIL import Image

    if img.format == "GIF":
        if data is None:
            img.fp.seek(0)
            data = img.fp.read()
        sizes = _gif_sizes(data, max_frames + 1)
        if sizes:
            if len(sizes) > max_frames:
                raise too_many_frames(source, max_frames)
            return sizes
    sizes = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            while True:
                try:
                    img.seek(len(sizes))
                except EOFError:
                    if not sizes:
                        raise
                    break
                sizes.append((img.width, img.height))
                if len(sizes) > max_frames:
                    raise too_many_frames(source, max_frames)
            img.seek(0)
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(f"{source} frame {len(sizes)} is larger than the pixel limit") from e
    except PIL_ERRORS as e:
        raise InputError(
            f"{source} frame {len(sizes)} is truncated or corrupt: {_pil_message(e)}"
        ) from e
    return sizes


def too_many_frames(source: str, max_frames: int) -> InputError:
    return InputError(
        f"{source} has {max_frames + 1} or more frames, more than the limit of {max_frames}; "
        "trim it first"
    )


def _pil_message(e: BaseException) -> str:
    text = str(e).splitlines()[0][:200] if str(e) else ""
    return (
        f"{type(e).__name__}: {text}"
        if isinstance(e, (KeyError, TypeError, IndexError)) or not text
        else text
    )


def pil_frames(img, source: str, max_pixels: int, max_frames: int | None = None) -> Iterator:
    """RGB ``uint8 (H, W, 3)`` arrays of every frame of an opened Pillow image (GIF, multi-page
    TIFF, animated WebP...), one at a time. Each frame's size is read from its header (``seek``)
    and checked against ``max_pixels`` BEFORE the frame is decoded, so one huge frame after a small
    first one cannot allocate gigabytes; more than ``max_frames`` frames (None: no cap) is an
    :class:`InputError` (frames are found by seeking one at a time, never ``n_frames``). Float
    frames in [0, 1] are scaled to 0-255 and NaN frames refused (:func:`refvos.media.image.load_image`)."""
    import warnings

    from PIL import Image

    from .image import check_pixels, load_image

    i = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                try:
                    img.seek(i)
                except EOFError:
                    if i == 0:
                        raise
                    return
                if max_frames is not None and i >= max_frames:
                    raise too_many_frames(source, max_frames)
                check_pixels(img.width, img.height, f"{source} frame {i}", max_pixels)
                img.load()
        except InputError:
            raise
        except Image.DecompressionBombError as e:
            raise InputError(
                f"{source} frame {i} is larger than the limit of {max_pixels:,} pixels"
            ) from e
        except PIL_ERRORS as e:
            raise InputError(
                f"{source} frame {i} is truncated or corrupt: {_pil_message(e)}"
            ) from e
        yield load_image(img)
        i += 1


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files of a frame folder, in natural (name) order; error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"video folder {folder} does not exist")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise InputError(
            f"video folder {folder} has no frames (expected {', '.join(FRAME_SUFFIXES)} files)"
        )
    return frames


def read_video_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator:
    """Frames of a folder (paths) or of a video file (RGB arrays). GIF is read with Pillow; other
    containers need imageio with an ffmpeg plugin and give a clear error without it. More than
    ``max_frames`` frames (None: no cap) is an :class:`InputError` when the frame after the cap
    is reached."""

    path = Path(path)
    if path.is_dir():
        frames = list_frames(path)
        if max_frames is not None and len(frames) > max_frames:
            raise too_many_frames(f"video {path}", max_frames)
        yield from frames
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

    yield from video_file_frames(path, f"video {path}", MAX_PIXELS, max_frames=max_frames)


def video_file_frames(
    file: Path | bytes,
    source: str,
    max_pixels: int,
    suffix: str = "",
    max_frames: int | None = None,
) -> Iterator:
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
    except PIL_ERRORS as e:
        raise InputError(f"{source} cannot be read: {_pil_message(e)}") from e
    if img is not None:
        with img:
            yield from pil_frames(img, source, max_pixels, max_frames)
        return
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise InputError(
            f"{source}: reading video files needs imageio with PyAV (pip install imageio av); "
            "or give a folder of frames or a GIF"
        ) from e
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
                if max_frames is not None and i >= max_frames:
                    raise too_many_frames(source, max_frames)
                frame = np.asarray(frame)
                check_pixels(frame.shape[1], frame.shape[0], f"{source} frame {i}", max_pixels)
                yield (
                    np.ascontiguousarray(frame[:, :, :3])
                    if frame.ndim == 3
                    else np.repeat(frame[:, :, None], 3, 2)
                )
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"{source} cannot be decoded: {type(e).__name__}") from e
        return
    if errors:
        raise InputError(f"{source} is not a readable video ({errors[0][:200]})")
    raise InputError(
        f"{source}: unsupported format (not an image or GIF; other video files need imageio with "
        "PyAV: pip install imageio av)"
    )
