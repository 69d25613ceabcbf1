"""Bad (and odd-but-valid) inputs for the reliability and serve tests: constant, truncated or
oddly-moded pictures, frame folders, GIF / TIFF decode bombs (:func:`gif_with_huge_second_frame`,
:func:`tiff_pages`, :func:`many_page_tiff`, :func:`flat_gif`), corrupt TIFF pages
(:func:`tiff_with_bad_second_page`), checkpoint bombs (:func:`deflated_checkpoint`: a torch zip of
a few MB whose deflated records inflate to gigabytes of zeros), and the files under a folder."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_constant_png(path: Path, width: int, height: int, value: int = 0) -> Path:
    """A ``width x height`` 8-bit grayscale PNG of one value, written without ever holding the
    pixels in memory (a 10000 x 10000 one is about 100 kB and takes well under a second)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes([value]) * width  # filter byte 0, then the row
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
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
    return data[:second] + b"\x2c" + struct.pack("<HHHH", 0, 0, side, side) + data[second + 9 :]


def tiff_pages(pages: list[tuple[int, int]], dtype: str = "uint8", value: float = 0.0) -> bytes:
    """A multi-page, tiled, zlib-compressed TIFF with pages of the given ``(h, w)``, every pixel
    ``value``; written tile by tile, so a 13300 x 13300 float page costs a few MB to build."""

    import tifffile

    tile = zlib.compress(np.full((512, 512), value, dtype=dtype).tobytes())  # encoded once, reused
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for h, w in pages:
            n = -(-h // 512) * -(-w // 512)
            tif.write(
                (tile for _ in range(n)),
                shape=(h, w),
                dtype=dtype,
                tile=(512, 512),
                compression="zlib",
                photometric="minisblack",
            )
    return buf.getvalue()


def _zip_archive(records: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A zip file of ``(name, method, data as stored, uncompressed size, crc32)`` records (no
    zip64: every size under 4 GiB), written by hand so that a record can be a deflate stream
    built without ever holding its inflated bytes."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, method, data, size, crc in records:
        encoded = name.encode()
        offset = local.tell()
        fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(data), size)
        local.write(b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + data)
        central.write(
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, offset)
            + encoded
        )
    start, directory = local.tell(), central.getvalue()
    end = b"PK\x05\x06" + struct.pack(
        "<HHHHIIH", 0, 0, len(records), len(records), len(directory), start, 0
    )
    return local.getvalue() + directory + end


def deflated_checkpoint(path: Path, tensors: int = 2, elements: int = 1 << 28) -> Path:
    """A refvos-looking checkpoint (``model`` of ``tensors`` float32 weights of ``elements`` zeros
    each, empty ``bert_model``) whose tensor records are deflated: about 1 MB of file per GiB that
    ``torch.load`` inflates. Built from a small ``torch.save`` whose sizes are rewritten in the
    pickle; no inflated record is ever held."""
    small = 123457  # a size that appears in the pickle only where the tensors' sizes are
    buf = io.BytesIO()
    torch.save(
        {"model": {f"w{i}": torch.zeros(small) for i in range(tensors)}, "bert_model": {}}, buf
    )
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 22)
    part = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)  # repeatable: no history
    nbytes = elements * 4
    assert nbytes % len(chunk) == 0 and nbytes < 1 << 32
    stream = part * (nbytes // len(chunk)) + deflate.flush()
    crc = 0
    for _ in range(nbytes // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    records = []
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(
                    b"J" + struct.pack("<i", small), b"J" + struct.pack("<i", elements)
                )
                records.append((info.filename, 0, data, len(data), zlib.crc32(data)))
            elif "/data/" in info.filename:
                records.append((info.filename, zipfile.ZIP_DEFLATED, stream, nbytes, crc))
            else:
                records.append((info.filename, 0, data, len(data), zlib.crc32(data)))
    path.write_bytes(_zip_archive(records))
    return path


def tiff_with_bad_second_page(defect: str) -> bytes:
    """A 2-page 8x8 TIFF whose second page has an unknown compression (``defect="compression"``)
    or no width tag (``"width"``): Pillow raises KeyError / TypeError on it, not OSError."""
    import io

    import tifffile

    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for _ in range(2):
            tif.write(np.zeros((8, 8), np.uint8))
    data = bytearray(buf.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    second = struct.unpack_from(
        "<I", data, first + 2 + 12 * struct.unpack_from("<H", data, first)[0]
    )[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):
        entry = second + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if defect == "compression" and tag == 259:
            struct.pack_into("<H", data, entry + 8, 12345)
        if defect == "width" and tag == 256:
            struct.pack_into("<H", data, entry, 65000)  # an unknown private tag instead
    return bytes(data)


def many_page_tiff(pages: int) -> bytes:
    """A TIFF of ``pages`` one-pixel pages (Pillow's ``n_frames`` is quadratic in their number)."""
    import io

    import tifffile

    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for _ in range(pages):
            tif.write(np.zeros((1, 1), np.uint8), contiguous=False)
    return buf.getvalue()


def flat_gif(frames: int, h: int, w: int) -> bytes:
    """An animated GIF of ``frames`` flat frames of ``h x w`` (alternating colours, so none is
    merged): a few kB that decode to ``frames * h * w`` pixels."""
    pictures = [Image.new("P", (w, h), i % 2) for i in range(frames)]
    for p in pictures:
        p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buf = io.BytesIO()
    pictures[0].save(
        buf, format="GIF", save_all=True, append_images=pictures[1:], duration=100, loop=0
    )
    return buf.getvalue()
