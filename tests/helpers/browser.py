"""A real headless Chromium for the browser tests (Debian's ``chromium``, driven by Playwright).

Chromium comes from ``make browser`` (``apt-get install chromium``). When it is missing a browser
test FAILS with a message saying so, unless ``REFVOS_SKIP_BROWSER=1`` is set explicitly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("REFVOS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_or_fail():
    """Playwright's ``sync_playwright`` where Chromium and Playwright are there; else fail (or skip
    under ``REFVOS_SKIP_BROWSER=1``)."""
    if os.environ.get("REFVOS_SKIP_BROWSER") == "1":
        pytest.skip("REFVOS_SKIP_BROWSER=1")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        pytest.fail(
            f"Chromium not found at {CHROMIUM}{f' (there is one at {found}: set REFVOS_CHROMIUM)' if found else ''}: "
            "install it with `make browser` (apt-get install chromium), or set REFVOS_SKIP_BROWSER=1 to skip",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the playwright Python package is missing: pip install -e .[dev]", pytrace=False
        )
    return sync_playwright
