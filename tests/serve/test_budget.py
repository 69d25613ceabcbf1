"""The measured work budget (refvos.serve.budget.measure_budget): its arithmetic on simulated timings
(an injected clock that the stand-in run advances; no real timing)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from refvos.errors import InputError
from refvos.serve.budget import MAX_WORK_CAP, measure_budget, noise_png, request_work


class Simulated:
    """A clock and a run(e) that advances it: ``backbone`` + ``head`` x e seconds, ``warmup``
    more on the first call (which must not count)."""

    def __init__(
        self, backbone: float, head: float, warmup: float = 100.0, slow_first_timed: float = 0.0
    ):
        self.now = 0.0
        self.backbone, self.head, self.warmup, self.slow = backbone, head, warmup, slow_first_timed
        self.calls: list[int] = []

    def clock(self) -> float:
        return self.now

    def run(self, expressions: int) -> None:
        self.now += self.backbone + self.head * expressions
        if not self.calls:
            self.now += self.warmup
        elif len(self.calls) == 1:
            self.now += self.slow  # the first timed pass is slower: the faster one is kept
        self.calls.append(expressions)


def test_one_expression_budget_is_max_seconds_over_the_seconds_per_pixel_of_work():
    """A 128 x 128 frame with one expression is 2 x 128^2 = 32,768 pixels of work; at 2 s a pass
    that is 2^-14 s per pixel, so 30 s buy 491,520 pixels (a 1024 x 1024 frame: 128 s)."""
    sim = Simulated(backbone=1.5, head=0.5, slow_first_timed=3.0)
    measured = measure_budget(sim.run, 128, 30.0, clock=sim.clock)
    assert sim.calls == [1, 1, 1]  # one warm-up, two timed
    assert measured.seconds == {1: 2.0}
    assert measured.max_work == 491_520
    assert measured.reference_frame_seconds == 128.0
    assert measured.describe() == (
        "budget: 491,520 pixels of work = 30 s measured at 128 s per 1024x1024-equivalent frame"
    )
    assert measured.to_json()["max_seconds"] == 30.0 and measured.to_json()["measured_side"] == 128


def test_a_costly_head_charges_the_largest_expression_count():
    """t(1) = 1 s, t(2) = 1.75 s: each expression adds 0.75 s, so 8 expressions take 6.25 s for
    9 x 128^2 pixels of work, a higher rate than one expression's 1 s for 2 x 128^2: the budget
    follows the 8 (the one-expression rate would let 8 expressions run 1.37x too long)."""
    sim = Simulated(backbone=0.25, head=0.75)
    measured = measure_budget(sim.run, 128, 30.0, max_expressions=8, clock=sim.clock)
    assert sim.calls == [2, 1, 2, 1, 2]  # warm-up, then interleaved
    assert measured.seconds == {1: 1.0, 2: 1.75}
    per_frame_8 = request_work([(128, 128)], 128, 8)
    assert measured.max_work == int(30.0 * per_frame_8 / 6.25) == 707_788
    frames = measured.max_work // per_frame_8  # the most 8-expression frames the budget admits
    assert frames * 6.25 <= 30.0 < (frames + 1) * 6.25


def test_a_light_head_keeps_the_one_expression_rate():
    sim = Simulated(backbone=0.9, head=0.1)
    measured = measure_budget(sim.run, 128, 30.0, max_expressions=8, clock=sim.clock)
    assert measured.max_work == int(30.0 * 32_768 / 1.0) == 983_040


def test_a_fast_machine_is_capped_for_memory():
    fast = Simulated(backbone=1e-6, head=0.0)
    assert measure_budget(fast.run, 128, 30.0, clock=fast.clock).max_work == MAX_WORK_CAP
    frozen = Simulated(backbone=0.0, head=0.0)
    measured = measure_budget(frozen.run, 128, 30.0, clock=frozen.clock, cap=5000)
    assert measured.max_work == 5000 and "capped at 5,000 for memory" in measured.describe()


def test_a_very_slow_machine_still_admits_one_pixel():
    slow = Simulated(backbone=1e9, head=0.0)
    assert measure_budget(slow.run, 128, 1.0, clock=slow.clock).max_work == 1


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_max_seconds_must_be_a_positive_number(seconds):
    sim = Simulated(1.0, 0.0)
    with pytest.raises(
        InputError, match="max_seconds must be a finite number of seconds more than 0"
    ):
        measure_budget(sim.run, 64, seconds, clock=sim.clock)
    assert not sim.calls


def test_noise_png_is_a_side_x_side_rgb_picture():
    with Image.open(io.BytesIO(noise_png(48))) as img:
        assert img.format == "PNG" and img.size == (48, 48) and img.mode == "RGB"
