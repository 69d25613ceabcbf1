"""io: see :mod:`.atomic` (its names are re-exported here)."""

from .atomic import (
    atomic_open,
    atomic_write,
    atomic_write_json,
    check_output_folder,
    check_writable,
    clean_stale_staging,
    staged_folder,
)

__all__ = [
    "atomic_open",
    "atomic_write",
    "atomic_write_json",
    "check_output_folder",
    "check_writable",
    "clean_stale_staging",
    "staged_folder",
]
