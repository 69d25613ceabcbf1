"""The segmentation network's inference path, optionally through ``torch.compile``.

:class:`SegmenterRunner` calls a :class:`~refvos.modeling.refvos.Segmenter`'s ``encode`` /
``decode`` eagerly or compiled with inductor and ``freezing`` (weights folded into the graph as
constants; inference only). A compiled graph is specialised to one input size: compiling costs
seconds for a small network and a minute or more for ResNet-101 on a CPU, which pays back over a
video or a data set of one frame size, not over one picture. So ``compile="auto"`` compiles an
image size once :data:`AUTO_COMPILE_AFTER_FRAMES` frames of that size have run (a video, an
evaluation, a warm server), and other sizes stay eager. The time of the calls that compiled is
reported by :meth:`SegmenterRunner.report`. A compilation failure falls back to eager with a
warning.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch

# compile="auto": an image size is compiled once this many frames of it have run
AUTO_COMPILE_AFTER_FRAMES = 64


_COMPILE_WORDS = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}


def check_compile(compile: str | bool) -> str | bool:
    """``"auto"``, ``True`` or ``False`` (also accepted as the strings ``"on"`` / ``"true"`` and
    ``"off"`` / ``"false"``, as the commands' ``--compile`` flag gives them)."""
    if isinstance(compile, str) and compile.lower() in _COMPILE_WORDS:
        compile = _COMPILE_WORDS[compile.lower()]
    if not (compile == "auto" or isinstance(compile, bool)):
        from ..errors import InputError

        raise InputError(f"compile must be 'auto', True or False, got {compile!r}")
    return compile


class SegmenterRunner:
    """``encode(images) -> features`` and ``decode(features, text, size) -> logits`` of
    ``segmenter`` (eval mode), eager or compiled per image size as ``compile`` says
    (``True``: every size, ``False``: none, ``"auto"``: sizes that ran
    ``after_frames`` frames).

    ``report()``: ``{"compiled": any size compiled, "compile_s": seconds spent in the calls that
    compiled (each includes one run), "compiled_sizes": [[h, w], ...], "fallback": the error that
    made it eager, or None}``.
    """

    def __init__(self, segmenter: torch.nn.Module, compile: str | bool = False,
                 after_frames: int | None = None) -> None:
        self.segmenter = segmenter
        self.compile = check_compile(compile)
        self.after_frames = AUTO_COMPILE_AFTER_FRAMES if after_frames is None else after_frames
        self._encode: Callable | None = None
        self._decode: Callable | None = None
        self._frames: dict[tuple, int] = {}  # image size -> frames run
        self._hot_images: set[tuple] = set()  # image sizes run compiled
        self._hot_features: set[tuple] = set()  # their feature map sizes
        self._seen: set[tuple] = set()  # (graph, shapes, autocast) already compiled
        self.compile_s = 0.0
        self.fallback: str | None = None

    @property
    def compiled(self) -> bool:
        return bool(self._hot_images) and self.fallback is None

    def _compile(self) -> None:
        if self._encode is None:
            options = {"freezing": True}
            self._encode = torch.compile(self.segmenter.encode, dynamic=False, options=options)
            self._decode = torch.compile(self.segmenter.decode, dynamic=False, options=options)

    def _hot(self, size: tuple, frames: int) -> bool:
        """Whether images of ``size`` run compiled (counting ``frames`` more of them)."""
        if self.compile is False or self.fallback is not None:
            return False
        if size not in self._hot_images:
            self._frames[size] = self._frames.get(size, 0) + frames
            if self.compile is True or self._frames[size] >= self.after_frames:
                self._compile()
                self._hot_images.add(size)
        return size in self._hot_images

    def _call(self, compiled: Callable, eager: Callable, key: tuple, *args):
        key = (*key, torch.is_autocast_enabled("cpu"), torch.is_autocast_enabled("cuda"))
        if key in self._seen:
            return compiled(*args)
        start = time.perf_counter()
        try:
            out = compiled(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: run eager from now on
            first_line = str(e).splitlines()[0] if str(e) else ""
            self.fallback = f"{type(e).__name__}: {first_line}"
            self._hot_images.clear()
            warnings.warn(f"torch.compile failed ({self.fallback}); running the network eagerly",
                          RuntimeWarning, stacklevel=3)
            return eager(*args)
        self.compile_s += time.perf_counter() - start
        self._seen.add(key)
        return out

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(B, C, h, w)`` of normalised images ``(B, 3, H, W)``."""
        size = tuple(images.shape[-2:])
        if not self._hot(size, images.shape[0]):
            return self.segmenter.encode(images)
        features = self._call(self._encode, self.segmenter.encode, ("encode", tuple(images.shape)), images)
        if self.fallback is None:
            self._hot_features.add(tuple(features.shape[-2:]))
        return features

    def decode(self, features: torch.Tensor, text: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Float logits ``(B, 2, *size)`` of features ``(B, C, h, w)`` and sentence vectors."""
        size = tuple(size)
        if self.fallback is not None or tuple(features.shape[-2:]) not in self._hot_features:
            return self.segmenter.decode(features, text, size)
        key = ("decode", tuple(features.shape), tuple(text.shape), size)
        return self._call(self._decode, self.segmenter.decode, key, features, text, size)

    def report(self) -> dict:
        return {"setting": self.compile, "compiled": self.compiled, "compile_s": round(self.compile_s, 3),
                "compiled_sizes": sorted(list(s) for s in self._hot_images), "fallback": self.fallback}
