"""refvos.media.video: frames batched by size, read ahead in a thread."""

from __future__ import annotations

import numpy as np
import pytest

from refvos.errors import InputError
from refvos.media.video import frame_batches, prefetch


def frames(n, h=4, w=5):
    return [np.full((h, w, 3), i, np.uint8) for i in range(n)]


def test_batches_keep_the_order_and_the_last_short_batch():
    batches = list(frame_batches(frames(7), 3, max_pixels=10**6))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [int(f[0, 0, 0]) for b in batches for f in b] == list(range(7))
    assert list(frame_batches(iter([]), 3, 10**6)) == []


def test_big_frames_run_in_smaller_batches():
    # 20 pixels a frame, at most 45 pixels a batch: two frames a batch whatever batch_size asks
    assert [len(b) for b in frame_batches(frames(5), 4, max_pixels=45)] == [2, 2, 1]
    assert [len(b) for b in frame_batches(frames(2), 4, max_pixels=5)] == [1, 1]  # never empty


def test_a_frame_of_another_size_is_one_line():
    mixed = frames(2) + frames(1, h=6)
    with pytest.raises(InputError, match="video frames differ in size: 5x4 then 5x6"):
        list(frame_batches(mixed, 4, 10**6))
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        list(frame_batches(frames(1), 0, 10**6))


def test_prefetch_yields_everything_in_order():
    assert list(prefetch(iter(range(20)), depth=3)) == list(range(20))
