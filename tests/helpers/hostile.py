"""Bad (and odd-but-valid) inputs for the reliability and serve tests: constant, truncated or
oddly-moded pictures, frame folders, GIF / TIFF decode bombs, and the files under a folder."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def write_constant_png(path: Path, width: int, height: int, value: int = 0) -> Path:
    """A ``width x height`` 8-bit grayscale PNG of one value, written without ever holding the
    pixels in memory (a 10000 x 10000 one is about 100 kB and takes well under a second)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes([value]) * width  # filter byte 0, then the row
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def rgb(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, mode: str, h: int = 40, w: int = 48) -> Path:
    """An image of PIL ``mode`` (L, RGBA, P, I;16, CMYK, RGB) saved to ``path``."""
    base = Image.fromarray(rgb(h, w))
    if mode == "I;16":
        arr = (np.random.default_rng(1).integers(0, 65536, (h, w))).astype(np.uint16)
        img = Image.fromarray(arr)  # mode I;16
    elif mode == "P":
        img = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        img = base.convert(mode)
    img.save(path)
    return path


def truncated_png(path: Path) -> Path:

    buf = io.BytesIO()
    Image.fromarray(rgb()).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def frames_folder(folder: Path, sizes: list[tuple[int, int]], bad: int | None = None) -> Path:
    """A folder of PNG frames ``00000.png ...`` of the given ``(h, w)``; frame ``bad`` is text."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        path = folder / f"{i:05d}.png"
        if i == bad:
            path.write_text("not a frame")
        else:
            Image.fromarray(rgb(h, w, seed=i)).save(path)
    return folder


def tree(root: Path) -> list[str]:
    """Every path under ``root`` (relative, sorted): to check that nothing was written."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def gif_with_huge_second_frame(side: int = 13300) -> bytes:
    """A two-frame GIF (~1 kB) whose second frame's descriptor claims ``side x side`` pixels (its
    pixel data is a stub): a decoder that trusts the frame allocates ``side**2`` bytes or more."""

    small = [Image.fromarray(rgb(8, 8, seed=i)) for i in range(2)]
    buf = io.BytesIO()
    small[0].save(buf, format="GIF", save_all=True, append_images=small[1:], duration=100, loop=0)
    data = buf.getvalue()
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, 8, 8)
    second = data.index(descriptor, data.index(descriptor) + 1)
    return data[:second] + b"\x2c" + struct.pack("<HHHH", 0, 0, side, side) + data[second + 9:]


def tiff_pages(pages: list[tuple[int, int]], dtype: str = "uint8", value: float = 0.0) -> bytes:
    """A multi-page, tiled, zlib-compressed TIFF with pages of the given ``(h, w)``, every pixel
    ``value``; written tile by tile, so a 13300 x 13300 float page costs a few MB to build."""

    import tifffile

    tile = zlib.compress(np.full((512, 512), value, dtype=dtype).tobytes())  # encoded once, reused
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for h, w in pages:
            n = -(-h // 512) * -(-w // 512)
            tif.write((tile for _ in range(n)), shape=(h, w), dtype=dtype, tile=(512, 512),
                      compression="zlib", photometric="minisblack")
    return buf.getvalue()
