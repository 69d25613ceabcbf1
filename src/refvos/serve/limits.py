"""The limits of ``refvos serve``: one dataclass, checked once when the server is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..errors import InputError
from .budget import DEFAULT_MAX_WORK, MAX_EXPRESSION_CHARS

MAX_EXPRESSIONS = 8  # per request
__all__ = ["MAX_EXPRESSIONS", "MAX_EXPRESSION_CHARS", "Limits"]


@dataclass
class Limits:
    """Every bound the server enforces. Memory: at most ``max_buffered_bytes`` of request bodies
    are held while they arrive; ``workers`` requests run at once, each within ``max_work`` and
    holding one batch of frames at a time (decoded, predicted and rendered frame by frame)."""

    workers: int = 1  # model workers running at once
    queue: int = 4  # admitted requests (whole body received) waiting for a worker
    max_bytes: int = 20 * 1024 * 1024  # request body
    max_pixels: int = 40_000_000  # of every uploaded picture or frame, checked before decoding it
    max_size: int = 1024  # long side of the processed picture
    max_frames: int = 48  # of a video
    # pixels of work per request: frames x (pixels + expressions x pixels after the max_size
    # downscale), from the headers before decoding (refvos.serve.budget); more is refused with 413.
    # `refvos serve` measures it from a time budget at start (make_server's max_seconds)
    max_work: int = DEFAULT_MAX_WORK
    queue_timeout: float = 60.0  # seconds an admitted request waits for a worker
    header_timeout: float = 10.0  # seconds to send a request's headers (also idle keep-alive)
    body_timeout: float = 30.0  # seconds for a request's whole body to arrive, else 408
    max_connections: int = 256  # open connections; more are answered 503 at once
    max_buffered_bytes: int = 256 * 1024 * 1024  # bodies being received, all requests together

    def check(self) -> Limits:
        """Raise :class:`InputError` naming the first limit out of range (NaN, <= 0 ...)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise InputError(f"limit {f.name} must be a finite number, got {value!r}")
            low = 0 if f.name == "queue" else (16 if f.name == "max_size" else 1)
            if f.name.endswith("timeout"):
                low = 0.01
            if value < low:
                raise InputError(f"limit {f.name} must be at least {low}, got {value!r}")
        if self.max_buffered_bytes < self.max_bytes:
            raise InputError("limit max_buffered_bytes must be at least max_bytes")
        return self
