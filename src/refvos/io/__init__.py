"""io: see :mod:`.atomic` (its names are re-exported here)."""

from .atomic import (
    atomic_open,
    atomic_write,
    atomic_write_json,
    check_writable,
)

__all__ = [
    "atomic_open",
    "atomic_write",
    "atomic_write_json",
    "check_writable",
]
