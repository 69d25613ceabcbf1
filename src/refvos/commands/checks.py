"""Checks of flags shared by several commands, run before anything slow is built."""

from __future__ import annotations


def check_device(value: str | None) -> None:
    """``--device``: a device name this machine has (``cuda`` without a GPU is refused)."""
    if value in (None, "auto"):
        return
    from ..errors import InputError
    from ..runtime import resolve_device

    try:
        resolve_device(value)
    except InputError as e:
        raise InputError(f"--device {value}: {e}") from e
