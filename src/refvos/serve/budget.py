"""The work one request may ask for, shared by ``refvos serve`` and the Gradio demo, checked from
the frames' headers before any pixel is decoded.

The work of a request is counted in pixels: every frame costs its decoded pixels (decoding,
scaling down) plus, per expression, the pixels the network sees after the ``max_size`` downscale
(the network's pass, its mask and overlay)::

    work = sum over frames of (decoded pixels + expressions x processed pixels)

so 48 frames of 1024 x 1024 with one expression are about 100 million, and 48 frames of 6000 x
6000 about 1.8 billion whatever ``max_size`` is.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InputError

MAX_EXPRESSION_CHARS = 1000  # longest expression a server or the demo accepts
# pixels of work per request: about 28 frames of 1024 x 1024 with one expression, or 48 frames of
# 640 x 640 with two (refvos_lite runs about a frame of 1024 x 1024 a second on a server CPU)
DEFAULT_MAX_WORK = 60_000_000


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


def check_work(sizes: list[tuple[int, int]], max_size: int | None, expressions: int, budget: int,
               source: str) -> int:
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
            budget, asked)
    return asked


def check_expression_length(expression: str) -> str:
    """``expression`` if at most :data:`MAX_EXPRESSION_CHARS` characters, else :class:`InputError`."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InputError(f"expression is {len(expression)} characters long, more than the limit of "
                         f"{MAX_EXPRESSION_CHARS}")
    return expression
