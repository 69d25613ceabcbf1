"""Atomic file writes: a temporary file in the target folder, fsync, then rename.

A crash or a full disk during a write leaves the previous file untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _default_mode())  # mkstemp's 0600 -> what open() would give
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _default_mode() -> int:
    """0666 minus the process umask: the permissions a plain ``open(path, "w")`` creates.

    The umask is read from ``/proc`` where possible: ``os.umask`` can only read it by setting it,
    which would race with other threads creating files."""
    try:
        with open("/proc/self/status") as f:
            umask = next(int(ln.split()[1], 8) for ln in f if ln.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary file and rename it to ``path``."""
    with atomic_open(path, mode) as f:
        write(f)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=True), mode="w")


def check_writable(paths: list[Path], inputs: list[Path] = ()) -> None:
    """Before any work: every output can be written (its nearest existing folder is writable, it
    is not a folder), no two outputs are the same file and none is an input. One-line InputError."""
    from ..errors import InputError

    seen: dict[Path, Path] = {}
    resolved_inputs = {q.resolve() for q in inputs}
    for path in paths:
        key = path.resolve()
        if key in resolved_inputs:
            raise InputError(f"output {path} is the input file; choose another name")
        if key in seen:
            raise InputError(f"outputs {seen[key]} and {path} are the same file; give them different names")
        seen[key] = path
        if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
            raise InputError(f"cannot write {path}: {'it is a folder' if path.is_dir() else 'permission denied'}")
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"cannot write {path}: folder {folder} is not writable")
