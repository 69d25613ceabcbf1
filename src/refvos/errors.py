"""The project's own error types.

Every error that a user can cause (a bad file, a bad argument) is a :class:`RefVOSError`
subclass whose message names the file or argument and what was expected. The CLI turns these
into one line on stderr and exit status 2.
"""

from __future__ import annotations


class RefVOSError(Exception):
    """Base class of every user-facing refvos error."""


class DataFormatError(RefVOSError, ValueError):
    """A data set or annotation file is missing or does not have the expected layout."""


class CheckpointError(RefVOSError, ValueError):
    """A checkpoint cannot be read, is unsafe, or does not match the model."""


class InputError(RefVOSError, ValueError):
    """A user input (image, video, expression, argument) is not usable."""


class UnsafePickleError(DataFormatError):
    """A pickle tried to build an object outside the allow-list; nothing in it was run."""


class MissingExtraError(RefVOSError, ImportError):
    """An optional package that a command needs is not installed (the message names the
    ``pip install "refvos[EXTRA]"`` that brings it)."""
