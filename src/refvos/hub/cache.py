"""Where released weights are kept, and the SHA-256 recorded beside each file.

The cache folder is ``$REFVOS_HOME``, else ``$XDG_CACHE_HOME/refvos``, else
``~/.cache/refvos``. A file ``NAME`` is trusted once it has loaded through the safe loader; its
SHA-256 is then written to ``NAME.sha256`` and every later use recomputes the hash and refuses
the file when it differs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import CheckpointError
from ..io import atomic_open

CHUNK = 1 << 20


def cache_dir() -> Path:
    """The folder released weights are downloaded to (not created here)."""
    if os.environ.get("REFVOS_HOME"):
        return Path(os.environ["REFVOS_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "refvos"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_path(path: Path) -> Path:
    """``path`` with ``.sha256`` appended: where its recorded hash lives."""
    return path.with_name(path.name + ".sha256")


def recorded_hash(path: Path) -> str | None:
    """The SHA-256 recorded for ``path``, None when none was recorded."""
    try:
        text = hash_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text else None


def record_hash(path: Path, digest: str) -> None:
    """Write ``digest`` to ``path``'s hash file (``sha256sum``'s format), atomically."""
    with atomic_open(hash_path(path), "w") as f:
        f.write(f"{digest}  {path.name}\n")


def check_recorded_hash(path: Path, name: str) -> str:
    """``path``'s SHA-256 after checking it equals the recorded one (:class:`CheckpointError`
    in one line when it does not)."""
    expected, actual = recorded_hash(path), sha256_file(path)
    if expected is not None and actual != expected:
        raise CheckpointError(
            f"{path} (released model {name!r}) has SHA-256 {actual[:16]}..., not the "
            f"{expected[:16]}... recorded when it was downloaded: it was changed or damaged; delete it "
            f"and run 'refvos download {name}' again"
        )
    return actual
