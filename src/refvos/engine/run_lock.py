"""An exclusive lock on a training run's folder, so two trainings cannot share one (they would
interleave ``log.jsonl`` and overwrite each other's ``last.pth``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError

LOCK_NAME = ".refvos-train.lock"


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<run_dir>/.refvos-train.lock`` (``flock``, released when the process ends, even
    killed) for the duration; :class:`InputError` naming the lock and its holder when another
    process holds it."""
    import fcntl

    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise InputError(f"cannot create the run lock {path}: {e.strerror or e}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise InputError(
                f"run folder {run_dir} is in use by another training (lock {path} held by "
                f"pid {holder}); wait for it or choose another --model_id"
            ) from None
        try:  # the holder's pid, for the message another run gets (the flock is what locks)
            pid = str(os.getpid()).encode()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except OSError as e:  # a full disk, a quota
            raise InputError(f"cannot write the run lock {path}: {e.strerror or e}") from e
        yield path
    finally:
        os.close(fd)  # releases the lock
