"""Atomic file writes (a temporary file in the target folder, fsync, then rename) and the checks
every command runs on its outputs before any work (:func:`check_writable` for files,
:func:`check_output_folder` for folders).

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


def _check_folder_writable(path: Path) -> None:
    from ..errors import InputError

    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: folder {folder} is not writable")


def check_writable(paths: list[Path], inputs: list[Path] = ()) -> None:
    """Before any work: every output can be written (its nearest existing folder is writable, it
    is not a folder), no two outputs are the same file and none is an input. One-line InputError."""
    from ..errors import InputError

    seen: dict[Path, Path] = {}
    resolved_inputs = {Path(q).resolve() for q in inputs}
    for path in map(Path, paths):
        key = path.resolve()
        if key in resolved_inputs:
            raise InputError(f"output {path} is the input file; choose another name")
        if key in seen:
            raise InputError(
                f"outputs {seen[key]} and {path} are the same file; give them different names"
            )
        seen[key] = path
        if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
            raise InputError(
                f"cannot write {path}: {'it is a folder' if path.is_dir() else 'permission denied'}"
            )
        _check_folder_writable(path)


def check_output_folder(
    path: str | os.PathLike,
    option: str = "--out",
    inputs: list[Path] = (),
    owned_by: str | None = None,
) -> Path:
    """Before any work, for an output folder: it is not a file, it can be created or written, it
    is none of the ``inputs`` and holds none of them. ``owned_by``: the name of the file a
    previous run of the command leaves in the folder, for commands that REPLACE the folder; an
    existing non-empty folder without it is refused (nothing is deleted that the command did not
    write). One-line InputError naming ``option``; returns the path."""
    from ..errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file; give a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {option} {path}: permission denied")
    _check_folder_writable(path)
    resolved = path.resolve()
    for q in inputs:
        q = Path(q).resolve()
        if q == resolved or q.is_relative_to(resolved):
            raise InputError(f"{option} {path} is or holds the input {q}; choose another folder")
    if (
        owned_by is not None
        and path.is_dir()
        and not (path / owned_by).is_file()
        and any(path.iterdir())
    ):
        raise InputError(
            f"{option} {path} is a folder that is not empty and is not an output of this command "
            f"(no {owned_by}); it would be replaced: choose a new folder"
        )
    return path


def _lock_dir(path: Path, wait: bool) -> int | None:
    """An open descriptor of folder ``path`` holding an exclusive ``flock`` (released when the
    process ends, even killed), or None when another process holds it (``wait=False``)."""
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def clean_stale_staging(target: str | os.PathLike) -> list[Path]:
    """Remove the hidden staging folders ``.<name>.*.tmp`` beside folder ``target`` that a killed
    :func:`staged_folder` left (no live process holds their lock); a previous ``target`` moved
    aside by a swap that was killed half-way is put back first when ``target`` is missing.
    Returns the folders removed."""
    import shutil

    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for path in sorted(
        target.parent.glob(f".{target.name}.*.tmp"), key=lambda p: not p.name.endswith(".old.tmp")
    ):
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = _lock_dir(path, wait=False)
        except OSError:
            continue
        if fd is None:  # a run in progress
            continue
        try:
            if path.name.endswith(".old.tmp") and not target.exists():
                os.rename(path, target)
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """A hidden staging folder beside folder ``target`` to write a whole result into; when the
    block ends without an error it replaces ``target`` whole (two renames: the previous ``target``
    aside, the staging folder in its place; then the previous one is removed), so ``target``
    never holds a mix of two runs. On an error the staging folder is removed and ``target`` left
    as it was. Staging folders left by killed runs are cleaned first
    (:func:`clean_stale_staging`); a live run's folders are locked against that."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    fds = [_lock_dir(stage, wait=True)]
    old = None
    try:
        yield stage
        if target.exists():
            fds.append(_lock_dir(target, wait=True))  # locked while it is aside
            old = stage.with_name(stage.name[: -len(".tmp")] + ".old.tmp")
            os.rename(target, old)
        os.rename(stage, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            os.rename(old, target)  # the swap failed half-way: the previous result back
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        for fd in fds:
            os.close(fd)
