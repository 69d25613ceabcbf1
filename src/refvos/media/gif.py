"""An animated GIF written one frame at a time: memory stays flat in the number of frames
(Pillow's ``save(save_all=True)`` keeps every frame until the end)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from PIL import GifImagePlugin, Image


class GifWriter:
    """``with GifWriter(path, fps) as gif: gif.add(picture)`` ... writes a looping GIF; each frame
    is quantised to its own 256-colour palette (fast octree) and written at once. The file is complete (has its
    trailer) when the block ends without an error; on an error it is removed. ``path`` may also
    be a binary stream (``io.BytesIO``): written to, never closed."""

    def __init__(self, path: str | os.PathLike | BinaryIO, fps: float = 6.0) -> None:
        if fps <= 0:
            raise ValueError(f"GifWriter: fps must be positive, got {fps}")
        self.stream = path if hasattr(path, "write") else None
        self.path = None if self.stream is not None else Path(path)
        self.duration = int(round(1000 / fps))
        self.frames = 0
        self._file = None

    def __enter__(self) -> GifWriter:
        if self.stream is not None:
            self._file = self.stream
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        return self

    def add(self, picture: Image.Image) -> None:
        """Append one frame (any mode; converted to RGB and quantised). Fast octree quantisation:
        about 1 ms for a 480x280 frame where median cut (what ``Image.save`` does) took 0.4 s."""
        frame = picture.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        if self.frames == 0:
            header, _ = GifImagePlugin.getheader(
                frame, None, {"loop": 0, "duration": self.duration}
            )
            self._file.writelines(header)
        self._file.writelines(
            GifImagePlugin.getdata(
                frame, (0, 0), duration=self.duration, include_color_table=True, disposal=1
            )
        )
        self._file.flush()  # on disk now, not held in a buffer
        self.frames += 1

    def __exit__(
        self, kind: type | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None and self.frames:
            self._file.write(b";")
        if self.stream is not None:
            return
        self._file.close()
        if kind is not None or not self.frames:
            self.path.unlink(missing_ok=True)
