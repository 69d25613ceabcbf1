"""Where the repository and RefVOS's annotation files beside it are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"


def shared_dataset_file(*parts: str) -> Path:
    """A file of RefVOS's released annotation folder, found beside the repository
    (``../shared/refvos-dataset/<parts>``). Missing: the test is skipped on a developer's
    machine, and fails under CI (``CI`` set), where the data must be there."""
    path = SHARED.joinpath("refvos-dataset", *parts)
    if not path.exists():
        message = f"{path} is not there (RefVOS's annotation files, expected beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
