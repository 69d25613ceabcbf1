"""The segmentation network's inference path, optionally through ``torch.compile``.

:class:`SegmenterRunner` calls a :class:`~refvos.modeling.refvos.Segmenter`'s ``encode`` /
``decode`` eagerly or compiled with inductor and ``freezing`` (weights folded into the graph as
constants; inference only). A compiled graph is specialised to one input size, and compiling
costs seconds for a small network and a minute or more for ResNet-101 on a CPU, while it saves a
few per cent of a frame's time there (3 % for ``refvos_r101`` in bf16). So ``compile="auto"``
compiles an image size only where it pays back: when the frames still to come of that size,
times the measured eager time per frame, times :data:`EXPECTED_SAVING`, exceed the compile time
(the time an earlier compile took, else the conservative :data:`DEFAULT_COMPILE_S`). The frames
to come are what the caller announced (:meth:`SegmenterRunner.expect_frames`: a video's length),
else as many as have run (a stream of unknown length compiles once it has run long enough for
the same again to pay back). :meth:`SegmenterRunner.freeze` stops all new compiling (a server
compiles its sizes at start, never inside a request). The time of the calls that compiled is
reported by :meth:`SegmenterRunner.report`. A compilation failure falls back to eager with a
warning.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch

# compile="auto": the fraction of a frame's eager time compiling is assumed to save (conservative:
# 3 % was measured for refvos_r101 in bf16 on a CPU; GPUs save more)
EXPECTED_SAVING = 0.05
# compile="auto": the compile time assumed before one has been measured (conservative: refvos_lite
# takes 7-11 s on a CPU, refvos_r101 a minute or more)
DEFAULT_COMPILE_S = 60.0


def pays_back(
    eager_s_per_frame: float, frames_ahead: int, compile_s: float, saving: float = EXPECTED_SAVING
) -> bool:
    """Whether compiling (``compile_s`` seconds) saves more than it costs over ``frames_ahead``
    frames that take ``eager_s_per_frame`` seconds each eagerly, compiled ``saving`` less."""
    return frames_ahead * eager_s_per_frame * saving > compile_s


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
    (``True``: every size, ``False``: none, ``"auto"``: sizes where compiling pays back, see
    the module's docstring; ``clock``, ``compile_cost_s`` and ``saving`` are the measurements
    and assumptions that decision uses, injectable for tests).

    ``report()``: ``{"compiled": any size compiled, "compile_s": seconds spent in the calls that
    compiled (each includes one run), "compiled_sizes": [[h, w], ...], "fallback": the error that
    made it eager, or None}``.
    """

    def __init__(
        self,
        segmenter: torch.nn.Module,
        compile: str | bool = False,
        *,
        clock: Callable[[], float] = time.perf_counter,
        compile_cost_s: float | None = None,
        saving: float = EXPECTED_SAVING,
    ) -> None:
        self.segmenter = segmenter
        self.compile = check_compile(compile)
        self.clock = clock
        self.compile_cost_s = compile_cost_s
        self.saving = saving
        self.frozen = False
        self._encode: Callable | None = None
        self._decode: Callable | None = None
        self._frames: dict[tuple, int] = {}  # image size -> frames run eagerly
        self._eager_s: dict[tuple, float] = {}  # image size -> seconds those frames took to encode
        self._expected: int | None = None  # frames announced by expect_frames()
        self._since_expected = 0  # frames run since
        self._hot_images: set[tuple] = set()  # image sizes run compiled
        self._hot_features: set[tuple] = set()  # their feature map sizes
        self._seen: set[tuple] = set()  # (graph, shapes, autocast) already compiled
        self._compiles = 0  # calls that compiled
        self.compile_s = 0.0
        self.fallback: str | None = None

    @property
    def compiled(self) -> bool:
        return bool(self._hot_images) and self.fallback is None

    def expect_frames(self, total: int | None) -> None:
        """Announce that ``total`` frames are coming (a video's length; None: unknown)."""
        self._expected = total
        self._since_expected = 0

    def freeze(self) -> None:
        """Compile nothing more: shapes compiled so far run compiled, every other shape eagerly."""
        self.frozen = True

    def _compile(self) -> None:
        if self._encode is None:
            options = {"freezing": True}
            self._encode = torch.compile(self.segmenter.encode, dynamic=False, options=options)
            self._decode = torch.compile(self.segmenter.decode, dynamic=False, options=options)

    def expected_compile_s(self) -> float:
        """The compile time ``auto`` reckons with: given, else the mean of the compiles so far,
        else :data:`DEFAULT_COMPILE_S`."""
        if self.compile_cost_s is not None:
            return self.compile_cost_s
        return self.compile_s / self._compiles if self._compiles else DEFAULT_COMPILE_S

    def _worth_compiling(self, size: tuple) -> bool:
        frames = self._frames.get(size, 0)
        if frames < 2:  # the first frame's time includes one-off warm-up: measure more
            return False
        if self._expected is not None:
            ahead = max(0, self._expected - self._since_expected)
        else:
            ahead = frames
        return pays_back(
            self._eager_s[size] / frames, ahead, self.expected_compile_s(), self.saving
        )

    def _hot(self, size: tuple) -> bool:
        """Whether images of ``size`` run compiled."""
        if self.compile is False or self.fallback is not None:
            return False
        if (
            size not in self._hot_images
            and not self.frozen
            and (self.compile is True or self._worth_compiling(size))
        ):
            self._compile()
            self._hot_images.add(size)
        return size in self._hot_images

    def _call(self, compiled: Callable, eager: Callable, key: tuple, *args):
        key = (*key, torch.is_autocast_enabled("cpu"), torch.is_autocast_enabled("cuda"))
        if key in self._seen:
            return compiled(*args)
        if self.frozen:  # a new shape after freeze(): eager, never a compile
            return eager(*args)
        start = time.perf_counter()
        try:
            out = compiled(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: run eager from now on
            first_line = str(e).splitlines()[0] if str(e) else ""
            self.fallback = f"{type(e).__name__}: {first_line}"
            self._hot_images.clear()
            warnings.warn(
                f"torch.compile failed ({self.fallback}); running the network eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            return eager(*args)
        self.compile_s += time.perf_counter() - start
        self._compiles += 1
        self._seen.add(key)
        return out

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 256, h, w)`` of normalised images ``(B, 3, H, W)``."""
        size = tuple(images.shape[-2:])
        self._since_expected += images.shape[0]
        if not self._hot(size):
            start = self.clock()
            features = self.segmenter.encode(images)
            if self.compile == "auto":
                self._eager_s[size] = self._eager_s.get(size, 0.0) + self.clock() - start
                self._frames[size] = self._frames.get(size, 0) + images.shape[0]
            return features
        features = self._call(
            self._encode, self.segmenter.encode, ("encode", tuple(images.shape)), images
        )
        if self.fallback is None:
            self._hot_features.add(tuple(features.shape[-2:]))
        return features

    def decode(
        self, features: torch.Tensor, text: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Float logits ``(B, 2, *size)`` of features ``(B, 256, h, w)`` and sentence vectors."""
        size = tuple(size)
        if self.fallback is not None or tuple(features.shape[-2:]) not in self._hot_features:
            return self.segmenter.decode(features, text, size)
        key = ("decode", tuple(features.shape), tuple(text.shape), size)
        return self._call(self._decode, self.segmenter.decode, key, features, text, size)

    def report(self) -> dict:
        return {
            "setting": self.compile,
            "compiled": self.compiled,
            "compile_s": round(self.compile_s, 3),
            "compiled_sizes": sorted(list(s) for s in self._hot_images),
            "fallback": self.fallback,
        }
