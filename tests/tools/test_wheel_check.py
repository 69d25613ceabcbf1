"""tools/wheel_check.py: sdist + wheel build, twine check, the wheel in a fresh venv over this
environment (predicting with the core alone), its requirements met without replacing torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_wheel_check_passes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "wheel_check.py"), "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "wheel check passed" in done.stdout
