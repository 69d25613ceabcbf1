"""``python -m tests.reliability.slow_save_runner <refvos args>``: ``refvos`` with checkpoint writes
made slow, so that a test can SIGKILL the process while a checkpoint is half written.

Each checkpoint is written as usual (``refvos.checkpoint.write_checkpoint``: temporary file,
fsync, rename) but the file object pauses ``REFVOS_TEST_SAVE_PAUSE`` seconds (default 0.3) after
its first megabyte, and again after the whole payload, before the rename. Numerics are untouched.
Before the command runs, torch's, numpy's and Python's generators are seeded from the operating
system's entropy, so two runs agree only through what ``--seed`` seeds: a broken ``--seed`` makes
the kill-and-resume comparison fail instead of passing on torch's fixed start-up seed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time


class _SlowFile:
    def __init__(self, f, pause: float) -> None:
        self._f, self._pause, self._written, self._paused = f, pause, 0, False

    def write(self, data) -> int:
        n = self._f.write(data)
        self._written += len(data)
        if not self._paused and self._written >= 1 << 20:
            self._f.flush()
            self._paused = True
            time.sleep(self._pause)  # a half-written temporary file exists now
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


def install() -> None:
    from refvos.checkpoint import formats as checkpoint

    pause = float(os.environ.get("REFVOS_TEST_SAVE_PAUSE", "0.3"))
    real_atomic_open = checkpoint.atomic_open

    @contextlib.contextmanager
    def slow_atomic_open(path, mode="wb"):
        with real_atomic_open(path, mode) as f:
            yield _SlowFile(f, pause)
            f.flush()
            time.sleep(pause)  # complete but not yet renamed

    checkpoint.atomic_open = slow_atomic_open


if __name__ == "__main__":
    install()
    import random

    import numpy as np
    import torch

    entropy = int.from_bytes(os.urandom(4), "little")
    random.seed(entropy)
    np.random.seed(entropy)
    torch.manual_seed(entropy)
    from refvos.cli import main

    sys.exit(main(sys.argv[1:]))
