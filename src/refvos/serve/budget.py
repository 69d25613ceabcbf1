"""The work one request may ask for, shared by ``refvos serve`` and the Gradio demo, checked from
the frames' headers before any pixel is decoded.

The work of a request is counted in pixels: every frame costs its decoded pixels (decoding,
scaling down) plus, per expression, the pixels the network sees after the ``max_size`` downscale
(the network's pass, its mask and overlay)::

    work = sum over frames of (decoded pixels + expressions x processed pixels)

so 48 frames of 1024 x 1024 with one expression are about 100 million, and 48 frames of 6000 x
6000 about 1.8 billion whatever ``max_size`` is.

The budget is a time budget by default: :func:`measure_budget` times the machine's own pipeline
on a synthetic frame at start and turns ``max_seconds`` into pixels of work (never more than
:data:`MAX_WORK_CAP`, a bound on memory).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import InputError

MAX_EXPRESSION_CHARS = 1000  # longest expression a server or the demo accepts
# pixels of work per request when no time budget is measured (library default): about 28 frames of
# 1024 x 1024 with one expression, or 48 frames of 640 x 640 with two
DEFAULT_MAX_WORK = 60_000_000
DEFAULT_MAX_SECONDS = 30.0  # time budget per request of `refvos serve` and the Gradio demo
# The most a measured budget may be, whatever the machine's speed: a bound on memory, not time.
# Frames stream (one batch at a time), but an answer keeps every frame's overlay (a GIF frame of
# noise is about 1.1 bytes a pixel) and mask for every expression, then base64 and the JSON copies:
# at most about 6 bytes per pixel of work, so about 0.7 GB; 48 frames of 1024 x 1024 with one
# expression (100.7 million) fit.
MAX_WORK_CAP = 120_000_000
NATIVE_MEASURE_SIDE = 640  # the synthetic frame's side when pictures run at their own size


class WorkBudgetError(InputError):
    """A request asks for more work than the budget: ``budget`` and ``asked`` (pixels of work)."""

    def __init__(self, message: str, budget: int, asked: int) -> None:
        super().__init__(message)
        self.budget = budget
        self.asked = asked


def processed_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled so the long side is at most ``max_size`` (what the server and
    the predictor do to a picture before the network sees it)."""
    if max_size is None or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def request_work(sizes: Iterable[tuple[int, int]], max_size: int | None, expressions: int) -> int:
    """Pixels of work of frames of ``sizes`` (``(width, height)`` each) with ``expressions``."""
    total = 0
    for w, h in sizes:
        pw, ph = processed_size(w, h, max_size)
        total += w * h + expressions * pw * ph
    return total


def check_work(
    sizes: list[tuple[int, int]], max_size: int | None, expressions: int, budget: int, source: str
) -> int:
    """The work of a request (:func:`request_work`); :class:`WorkBudgetError` saying the budget
    and what was asked when it is over ``budget``."""
    asked = request_work(sizes, max_size, expressions)
    if asked > budget:
        w, h = sizes[0]
        pw, ph = processed_size(w, h, max_size)
        frames = f"{len(sizes)} frame{'s' if len(sizes) != 1 else ''} of {w}x{h}"
        scaled = f" (processed at {pw}x{ph})" if (pw, ph) != (w, h) else ""
        raise WorkBudgetError(
            f"{source}: {frames}{scaled} with {expressions} expression{'s' if expressions != 1 else ''} is "
            f"{asked:,} pixels of work, more than the budget of {budget:,} per request (frames x (pixels + "
            "expressions x processed pixels)); send fewer or smaller frames, or fewer expressions",
            budget,
            asked,
        )
    return asked


def check_expression_length(expression: str) -> str:
    """``expression`` if at most :data:`MAX_EXPRESSION_CHARS` characters, else :class:`InputError`."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InputError(
            f"expression is {len(expression)} characters long, more than the limit of "
            f"{MAX_EXPRESSION_CHARS}"
        )
    return expression


@dataclass(frozen=True)
class MeasuredBudget:
    """A work budget measured on this machine: ``max_work`` pixels of work per request is
    ``max_seconds`` at ``seconds_per_work_pixel`` (capped at ``cap``). ``side``: the synthetic
    frame's side; ``seconds``: expressions -> the fastest timed pass on it."""

    max_work: int
    max_seconds: float
    seconds_per_work_pixel: float
    side: int
    seconds: dict[int, float]
    cap: int

    @property
    def reference_frame_seconds(self) -> float:
        """Seconds charged for one 1024 x 1024 frame with one expression (2 x 1024^2 pixels of work)."""
        return self.seconds_per_work_pixel * request_work([(1024, 1024)], 1024, 1)

    def describe(self) -> str:
        capped = f" (capped at {self.cap:,} for memory)" if self.max_work == self.cap else ""
        return (
            f"budget: {self.max_work:,} pixels of work = {self.max_seconds:g} s measured at "
            f"{self.reference_frame_seconds:.3g} s per 1024x1024-equivalent frame{capped}"
        )

    def to_json(self) -> dict:
        return {
            "max_work": self.max_work,
            "max_seconds": self.max_seconds,
            "seconds_per_work_pixel": self.seconds_per_work_pixel,
            "seconds_per_1024x1024_frame": self.reference_frame_seconds,
            "measured_side": self.side,
            "measured_seconds": {str(e): t for e, t in self.seconds.items()},
            "cap": self.cap,
        }


def measure_side(max_size: int | None) -> int:
    """The synthetic frame's side: the processed size, or :data:`NATIVE_MEASURE_SIDE` when
    pictures run at their own size (``max_size`` None)."""
    return max_size if max_size is not None else NATIVE_MEASURE_SIDE


def noise_png(side: int, seed: int = 0) -> bytes:
    """A ``side x side`` RGB PNG of noise (the slowest content to decode and to render), the
    synthetic frame :func:`measure_budget`'s runs start from."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def measure_budget(
    run: Callable[[int], object],
    side: int,
    max_seconds: float,
    max_expressions: int = 1,
    repeats: int = 2,
    clock: Callable[[], float] = time.perf_counter,
    cap: int = MAX_WORK_CAP,
) -> MeasuredBudget:
    """The work budget that ``max_seconds`` buys on this machine.

    ``run(e)`` answers one request of a ``side x side`` frame with ``e`` expressions, from its
    encoded bytes to its answer (decoding, the network, rendering). It runs once untimed (warm-up),
    then ``repeats`` timed times per expression count, interleaved, the fastest kept (``t(e)``):
    with one expression, and also with two when requests may carry more (``max_expressions > 1``),
    as each expression adds the network's head and its rendering. A frame with ``E`` expressions
    is charged ``(1 + E) x side^2`` pixels of work and modelled to take ``t(1) + (E - 1) x (t(2) -
    t(1))`` seconds; the seconds per pixel of work is the largest ratio of the two for ``E`` in
    ``1 .. max_expressions`` (monotonic in ``E``: ``E = 1`` or ``E = max_expressions``), so no
    expression count takes longer than it is charged. Decoded pixels are charged at that rate too,
    far more than decoding costs. ``max_work = int(max_seconds / seconds per pixel)``, between 1
    and ``cap``.
    """
    if not (math.isfinite(max_seconds) and max_seconds > 0):
        raise InputError(
            f"max_seconds must be a finite number of seconds more than 0, got {max_seconds}"
        )
    counts = (1, 2) if max_expressions > 1 else (1,)
    run(counts[-1])  # warm-up: first-call allocations, lazy initialisation
    seconds = dict.fromkeys(counts, float("inf"))
    for _ in range(max(1, repeats)):
        for e in counts:  # interleaved, so that a change in the machine's load touches both
            start = clock()
            run(e)
            seconds[e] = min(seconds[e], max(0.0, clock() - start))
    per_expression = max(0.0, seconds.get(2, seconds[1]) - seconds[1])
    rates = []
    for e in (1, max_expressions):
        modelled = seconds[1] + (e - 1) * per_expression
        rates.append(modelled / request_work([(side, side)], side, e))
    rate = max(rates)
    max_work = cap if rate <= 0 else max(1, min(cap, int(max_seconds / rate)))
    return MeasuredBudget(max_work, max_seconds, rate, side, seconds, cap)
