"""A restricted unpickler for annotation pickles (``refs(unc).p`` and friends).

Only builtin containers and scalars are admitted: ``dict``, ``list``, ``tuple``, ``set``,
``frozenset``, ``str``, ``bytes``, ``bytearray``, ``int``, ``float``, ``complex``, ``bool`` and
``None``. A pickle that names any other global (a class, ``os.system``, ``builtins.eval``, ...) is
refused with :class:`~refvos.errors.UnsafePickleError` before that global is looked up, so nothing
in it runs.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import IO, Any

from ..errors import DataFormatError, UnsafePickleError

# The only globals a pickle of builtin containers and scalars may need (protocols 0-5).
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "bytes"),  # b"" in protocols 0-2: bytes()
        ("builtins", "complex"),
        ("__builtin__", "set"),
        ("__builtin__", "frozenset"),
        ("__builtin__", "bytearray"),
        ("__builtin__", "bytes"),
        ("__builtin__", "complex"),
        ("_codecs", "encode"),  # bytes in protocols 0-2: encode(str, "latin1")
    }
)


def _bytearray(*args: Any) -> bytearray:
    """``bytearray`` for pickles: from bytes only. ``bytearray(10**12)`` in a hostile pickle would
    otherwise allocate a terabyte."""
    if len(args) > 1 or (args and not isinstance(args[0], (bytes, bytearray))):
        raise UnsafePickleError("bytearray(...) with arguments other than bytes")
    return bytearray(*args)


def _bytes(*args: Any) -> bytes:
    """``bytes`` for pickles: ``bytes()`` or from bytes only (``bytes(10**12)`` would allocate)."""
    if len(args) > 1 or (args and not isinstance(args[0], (bytes, bytearray))):
        raise UnsafePickleError("bytes(...) with arguments other than bytes")
    return bytes(*args)


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` for pickles: the latin-1 text of protocol 0-2 bytes only."""
    if not isinstance(obj, str) or str(encoding).lower().replace("-", "") not in ("latin1", "utf8"):
        raise UnsafePickleError(
            f"_codecs.encode(...) with {type(obj).__name__} and encoding {encoding!r}"
        )
    return obj.encode(encoding, errors)


_GUARDED = {"bytearray": _bytearray, "bytes": _bytes, "encode": _codecs_encode}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], name: str) -> None:
        # latin-1 turns Python 2 ``str`` objects (the original refs pickles) into ``str``.
        super().__init__(file, encoding="latin1")
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _GUARDED.get(name) or super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._name}: refused to load the pickle: it references {module}.{name}, and only "
            "builtin containers and scalars (dict, list, tuple, set, str, int, float, bool, None) "
            "are allowed; nothing in it was run"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self._name}: refused to load the pickle: it uses persistent ids, and only builtin "
            "containers and scalars are allowed; nothing in it was run"
        )


def safe_load(path_or_file: str | os.PathLike | IO[bytes]) -> Any:
    """Unpickle ``path_or_file`` admitting only builtin containers and scalars.

    Raises :class:`UnsafePickleError` for any other object and :class:`DataFormatError` for a
    missing or corrupt file; both name the file.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        name = os.fspath(path_or_file)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DataFormatError(f"{name}: cannot read the pickle ({e.strerror or e})") from e
        file: IO[bytes] = io.BytesIO(data)
    else:
        name = getattr(path_or_file, "name", "<pickle stream>")
        file = path_or_file
    try:
        return _RestrictedUnpickler(file, str(name)).load()
    except UnsafePickleError as e:
        if str(e).startswith(f"{name}:"):
            raise
        raise UnsafePickleError(
            f"{name}: refused to load the pickle: it calls {e}; nothing else in it was run"
        ) from e
    except Exception as e:  # truncated or not a pickle at all
        raise DataFormatError(f"{name}: not a readable pickle ({type(e).__name__}: {e})") from e
