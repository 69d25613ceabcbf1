"""The web page of ``refvos serve`` in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): upload a picture, type an expression, click, get the mask overlay back.

Chromium comes from ``make browser`` (``apt-get install chromium``). When it is missing the test
FAILS with a message saying so, unless ``REFVOS_SKIP_BROWSER=1`` is set explicitly.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvos.serve import Limits
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, browser_or_fail, make_tiny_model, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

H, W = 60, 80


@pytest.fixture(scope="module")
def server():
    browser_or_fail()  # before building anything
    with running_server(make_tiny_model().eval(), Limits(max_size=256)) as srv:
        yield srv


def _photo(path: Path) -> Path:
    """A picture with something in it: a red disc on a blue-green gradient."""
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 3, yy * 4, 255 - xx * 2], axis=-1).clip(0, 255).astype(np.uint8)
    rgb[(yy - 30) ** 2 + (xx - 50) ** 2 < 15**2] = (220, 30, 30)
    Image.fromarray(rgb).save(path)
    return path


def test_upload_type_click_get_mask(server, tmp_path):
    sync_playwright = browser_or_fail()
    photo = _photo(tmp_path / "photo.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "console", lambda m: "Content Security Policy" in m.text and errors.append(m.text)
            )
            page.goto(server.url + "/", timeout=60_000)
            assert "refvos" in page.title()

            # Clicking without a file says so on the page instead of calling the server.
            page.click("#submit")
            assert "Choose an image" in page.inner_text("#error")

            page.set_input_files("#file", str(photo))
            page.fill("#expression", "the red ball on the right")
            page.click("#submit")
            # (selectors, not JavaScript predicates: the page's CSP forbids eval, and stays in force here)
            page.wait_for_selector(
                '#result[src^="data:image/png;base64,"]', state="attached", timeout=120_000
            )
            src = page.get_attribute("#result", "src")
            data = base64.b64decode(src.split(",", 1)[1])
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert Image.open(io.BytesIO(data)).size == (W, H)
            mask_src = page.get_attribute("#mask", "src")
            mask = Image.open(io.BytesIO(base64.b64decode(mask_src.split(",", 1)[1])))
            assert mask.size == (W, H) and mask.mode == "L"
            assert page.is_visible("#output") and not page.is_visible("#error")
            assert "score" in page.inner_text("#stats")
            assert page.inner_text("#status") == "Done."
            # the browser really decoded and laid out the picture
            assert page.evaluate("document.getElementById('result').naturalWidth") == W

            # An empty expression is refused on the page; a bad file gets the server's 400 message.
            page.fill("#expression", "   ")
            page.click("#submit")
            assert "Type an expression" in page.inner_text("#error")
            bad = tmp_path / "broken.png"
            bad.write_bytes(b"this is not an image")
            page.set_input_files("#file", str(bad))
            page.fill("#expression", "the ball")
            page.click("#submit")
            page.wait_for_selector("#error:not([hidden])", timeout=60_000)
            assert "broken.png is not a readable image" in page.inner_text("#error")

            # A short video (animated GIF) comes back as an overlaid GIF.
            clip = tmp_path / "clip.gif"
            first = Image.open(photo).convert("RGB")
            frames = [first, first.transpose(Image.FLIP_LEFT_RIGHT), first]
            frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100, loop=0)
            page.set_input_files("#file", str(clip))
            page.click("#submit")
            page.wait_for_selector(
                '#result[src^="data:image/gif;base64,"]', state="attached", timeout=120_000
            )
            gif = Image.open(
                io.BytesIO(base64.b64decode(page.get_attribute("#result", "src").split(",", 1)[1]))
            )
            assert gif.n_frames == 3 and gif.width == W
            assert "3 frames" in page.inner_text("#result-caption")

            # Back to the good result for the screenshot a person looks at.
            page.set_input_files("#file", str(photo))
            page.fill("#expression", "the red ball on the right")
            page.click("#submit")
            page.wait_for_selector(
                '#result[src^="data:image/png;base64,"]', state="attached", timeout=120_000
            )
            for _ in range(600):  # the status line says Done. once the answer is shown
                if page.inner_text("#status") == "Done.":
                    break
                page.wait_for_timeout(100)
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    shot = Image.open(tmp_path / "page.png")
    assert shot.width >= 800
    if os.environ.get("REFVOS_KEEP_SCREENSHOT"):
        shutil.copy(tmp_path / "page.png", os.environ["REFVOS_KEEP_SCREENSHOT"])
