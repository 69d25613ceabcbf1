"""Fetching a released file into the cache: atomically, with a progress bar, verified.

The bytes come from Google Drive through ``gdown`` (which handles Drive's confirmation page),
or from the mirror named by ``REFVOS_WEIGHTS_URL``: a base URL (``https://host/weights/``,
also fetched by gdown) or a local folder (``/shared/weights`` or ``file:///shared/weights``)
holding the files by their registry filename. They are written to a temporary file beside the
target (``.NAME.*.part``), checked by ``verify`` (the safe loader), and only then renamed to
the target, so an interrupted transfer leaves nothing that looks complete; the SHA-256 is
recorded beside the file (:mod:`refvos.hub.cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from ..deps import require
from ..errors import CheckpointError, RefVOSError
from .cache import CHUNK, record_hash
from .registry import ReleasedWeights

MIRROR_ENV = "REFVOS_WEIGHTS_URL"
TIMEOUT_S = 60


class DownloadError(RefVOSError):
    """A released file could not be fetched (offline, a cut transfer, a missing mirror file)."""


def source_of(weights: ReleasedWeights) -> str:
    """Where ``weights`` come from: the mirror's URL or path for it, else its Drive URL."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return f"https://drive.google.com/uc?id={weights.drive_id}"
    if mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(weights.filename)
    folder = urllib.parse.urlparse(mirror).path if mirror.startswith("file://") else mirror
    return str(Path(folder).expanduser() / weights.filename)


def fetch(
    weights: ReleasedWeights, target: Path, verify: Callable[[Path], None], progress: bool = True
) -> str:
    """Download ``weights`` to ``target`` and return its SHA-256 (recorded in ``target``'s hash
    file). ``verify(path)`` checks the temporary file (raising to refuse it) before it is renamed
    to ``target``. A failure leaves no file at ``target`` and no temporary file; it is raised as
    :class:`DownloadError` in one line naming the URL to fetch by hand and where to put it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = source_of(weights)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                _transfer(source, f, digest, progress)
            except RefVOSError:
                raise
            except Exception as e:  # requests / gdown / OS errors: one line, with the way out
                raise DownloadError(_offline_message(weights, target, source, e)) from e
            f.flush()
            os.fsync(f.fileno())
        try:
            verify(Path(tmp))
        except CheckpointError as e:
            raise CheckpointError(
                f"the file downloaded from {source} for {weights.name!r} was refused and "
                f"not kept: {str(e).replace(tmp, weights.filename)}"
            ) from e
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    record_hash(target, digest.hexdigest())
    return digest.hexdigest()


def _transfer(source: str, f, digest, progress: bool) -> None:
    """Copy ``source`` (a URL or a local file) into the open file ``f``, updating ``digest``
    (gdown 6.4 or later: ``hasher``, ``timeout``)."""
    if source.startswith(("http://", "https://")):
        gdown = require("gdown", "downloading released models")
        gdown.download(
            source,
            output=f,
            quiet=not progress,
            use_cookies=False,
            timeout=TIMEOUT_S,
            hasher=digest,
            log_messages={"start": "", "output": ""},
        )
        if f.tell() == 0:
            raise OSError("the server sent an empty file")
        return
    with open(source, "rb") as src:
        for block in iter(lambda: src.read(CHUNK), b""):
            digest.update(block)
            f.write(block)


def _offline_message(weights: ReleasedWeights, target: Path, source: str, error: Exception) -> str:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    mirror = f" ({MIRROR_ENV})" if os.environ.get(MIRROR_ENV, "").strip() else ""
    return (
        f"cannot download {weights.name!r} from {source}{mirror}: {type(error).__name__}: {reason}; "
        f"download {weights.drive_url} by hand and save it as {target} (or set {MIRROR_ENV} to a "
        f"mirror URL or folder holding {weights.filename})"
    )
