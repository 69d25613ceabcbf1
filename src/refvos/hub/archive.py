"""Unpacking a released BERT zip safely.

Every member must be a plain file or folder with a relative path inside the destination (no
``..``, no absolute path, no link); at most :data:`MAX_MEMBERS` members and
:data:`MAX_TOTAL_BYTES` bytes once unpacked, each member cut off at its declared size. The
folder holding ``config.json`` is the BERT's ``save_pretrained`` folder (``--ck_bert``).
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import CheckpointError

MAX_MEMBERS = 1000
MAX_TOTAL_BYTES = 4 << 30
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _member_path(info: zipfile.ZipInfo, source: Path) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise CheckpointError(
            f"{source}: member {name[:80]!r} points outside the folder it unpacks to"
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise CheckpointError(f"{source}: member {name[:80]!r} is a symbolic link")
    return path


def extract_zip(source: Path, dest: Path) -> None:
    """Unpack ``source`` into the new folder ``dest`` (:class:`CheckpointError` for an unsafe
    or oversized archive; ``dest`` may then hold part of it: the caller unpacks into a
    temporary folder)."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{source} is not a readable zip archive: {e}") from e
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise CheckpointError(
                f"{source}: {len(members)} members, more than the limit of {MAX_MEMBERS}"
            )
        if sum(m.file_size for m in members) > MAX_TOTAL_BYTES:
            raise CheckpointError(f"{source}: unpacks to more than {MAX_TOTAL_BYTES:,} bytes")
        for info in members:
            path = dest.joinpath(*_member_path(info, source).parts)
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, open(path, "wb") as out:
                    copied = 0
                    while block := src.read(1 << 20):
                        copied += len(block)
                        if copied > info.file_size:
                            raise CheckpointError(
                                f"{source}: member {info.filename[:80]!r} is longer than declared"
                            )
                        out.write(block)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise CheckpointError(
                    f"{source}: member {info.filename[:80]!r} cannot be read: {e}"
                ) from e


def bert_folder(root: Path, source: Path) -> Path:
    """The one folder under ``root`` holding ``config.json`` and BERT weights."""
    found = sorted(
        {
            p.parent
            for p in root.rglob("config.json")
            if any((p.parent / w).is_file() for w in WEIGHT_FILES)
        }
    )
    if len(found) != 1:
        raise CheckpointError(
            f"{source}: expected one save_pretrained folder (config.json with {' or '.join(WEIGHT_FILES)}), "
            f"found {len(found)}"
        )
    return found[0]


def unpack_bert(source: Path, dest: Path) -> Path:
    """Unpack the BERT zip ``source`` to the folder ``dest`` (replacing it), through a temporary
    folder renamed into place once complete; returns ``dest``."""
    tmp = dest.with_name(f".{dest.name}.unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        extract_zip(source, tmp)
        folder = bert_folder(tmp, source)
        shutil.rmtree(dest, ignore_errors=True)
        folder.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
