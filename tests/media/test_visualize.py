"""Overlays people can read: a fill chosen against the object's colour, a white-and-black
outline at the picture's scale, captions in DejaVu Sans sized to the picture."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from refvos.media.image import load_image
from refvos.media.visualize import (
    FILL_COLORS,
    VideoFill,
    caption,
    caption_font,
    fill_color,
    line_width,
    overlay,
)
from tests.helpers import REPO_ROOT


def _scene(size: int, background, obj):
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    mask = np.zeros((size, size), bool)
    q = size // 4
    mask[q : 3 * q, q : 3 * q] = True
    image[mask] = obj
    return image, mask


def test_fill_is_chosen_against_the_objects_colour():
    red = fill_color(*_scene(64, (128, 128, 128), (220, 30, 30)))
    blue = fill_color(*_scene(64, (128, 128, 128), (0, 120, 210)))
    assert red in FILL_COLORS and red != (230, 25, 75)
    assert blue != (0, 130, 200)


def test_outline_is_white_inside_black_outside_on_a_red_object_on_red():
    image, mask = _scene(
        200, (200, 20, 20), (220, 30, 30)
    )  # red on red: a red outline would vanish
    out = np.asarray(overlay(image, mask))
    q = 50
    row = out[100]  # a horizontal line through the object's middle
    assert (row[q] == 255).all()  # the boundary band: white
    assert (row[q - 1 - line_width(200, 200)] == 0).all()  # just outside it: black
    inside = out[100, 100].astype(int)
    assert np.abs(inside - image[100, 100]).sum() > 100  # the fill visibly changes the object


def test_outline_and_caption_grow_with_the_picture():
    assert line_width(100, 100) == 1 and line_width(480, 640) >= 2 and line_width(1080, 1920) >= 7
    small, large = caption_font(160), caption_font(1280)
    assert small.path.endswith("DejaVuSans.ttf")  # matplotlib's bundled font, not Pillow's bitmap
    assert small.size >= 12 and large.size >= 40
    band_small = caption(Image.new("RGB", (160, 120)), "the dog").height - 120
    band_large = caption(Image.new("RGB", (1280, 960)), "the dog").height - 960
    assert band_large > 3 * band_small


def test_caption_wraps_long_expressions_within_the_width():
    text = "the man in the blue shirt standing on the left next to the woman holding an umbrella"
    picture = caption(Image.new("RGB", (200, 100), (255, 255, 255)), text)
    band = np.asarray(picture)[100:]
    dark_columns = np.nonzero((band < 128).any(axis=(0, 2)))[0]
    assert dark_columns.size and dark_columns.max() < 200 - 2  # nothing runs off the right edge
    one_line = caption(Image.new("RGB", (200, 100)), "the dog").height
    assert picture.height > one_line + 20  # several lines


@pytest.mark.parametrize("text", ["x" * 16_000, "ab " * 16_000, "W" * 5000 + " tail"])
def test_caption_wrapping_is_linear_in_the_text(text, monkeypatch):
    """A 16,000-character word (or 16,000 short words): the characters measured stay a small
    multiple of the text's length (measuring the rest of the word for every line it fills was
    quadratic: minutes for one caption), and at most 4 lines are drawn, the last marked cut."""
    from PIL import ImageFont

    measured = [0]
    getlength = ImageFont.FreeTypeFont.getlength
    monkeypatch.setattr(
        ImageFont.FreeTypeFont,
        "getlength",
        lambda self, t, *a, **k: (
            measured.__setitem__(0, measured[0] + len(t)) or getlength(self, t, *a, **k)
        ),
    )
    picture = caption(Image.new("RGB", (240, 100), (255, 255, 255)), text)
    assert measured[0] < 3 * len(text)
    assert (
        picture.height == caption(Image.new("RGB", (240, 100)), "y " * 400).height
    )  # 4 lines, as any long text
    band = np.asarray(picture)[100:]
    assert (band < 128).any(axis=(0, 2)).nonzero()[0].max() < 240 - 2


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, :] = (255, 0, 0, 255)  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    for source in (tmp_path / "logo.png", rgba):
        rgb = load_image(source)
        assert (rgb[:4] == (255, 0, 0)).all() and (rgb[4:] == 255).all()


@pytest.mark.parametrize("radius", [1, 2, 3, 5])
def test_dilation_matches_pils_square_max_filter(radius):
    from PIL import ImageFilter

    from refvos.media.visualize import _dilate

    rng = np.random.default_rng(radius)
    for shape in [(1, 7), (6, 1), (3, 4), (37, 53)]:
        for density in (0.02, 0.3):
            mask = rng.random(shape) < density
            mask[0, 0] = True  # something at the border
            ref = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").filter(
                ImageFilter.MaxFilter(2 * radius + 1)
            )
            np.testing.assert_array_equal(_dilate(mask, radius), np.asarray(ref) > 127)


# The caption font is matplotlib's bundled DejaVu Sans, found without importing matplotlib.
def test_caption_font_is_found_without_importing_matplotlib():
    code = (
        "import json, sys\nfrom refvos.media.visualize import caption_font\nfont = caption_font(300)\n"
        "print(json.dumps([font.path, 'matplotlib' in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    path, imported = json.loads(proc.stdout)
    assert (
        path.endswith(os.path.join("mpl-data", "fonts", "ttf", "DejaVuSans.ttf")) and not imported
    )


# A video's overlay colour is chosen once per expression (no flicker), from the first frame
# where the object is there.
RED, BLUE = (200, 30, 30), (30, 30, 200)


def solid(color, h=20, w=24) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.uint8), (h, w, 3)).copy()


def test_colour_stays_the_first_frames_although_the_object_changes_colour():
    mask = np.zeros((20, 24), bool)
    mask[5:15, 4:12] = True
    frames = [solid(RED), solid(BLUE), solid(RED), solid(BLUE)]
    assert fill_color(frames[0], mask) != fill_color(frames[1], mask)  # per frame it would flicker
    fill = VideoFill()
    colours = [fill(f, mask) for f in frames]
    assert colours == [fill_color(frames[0], mask)] * 4


def test_frames_before_the_object_appears_do_not_choose():
    empty, mask = np.zeros((20, 24), bool), np.zeros((20, 24), bool)
    mask[2:10, 2:10] = True
    fill = VideoFill()
    assert fill(solid(BLUE), empty) == FILL_COLORS[0] and fill.color is None
    assert fill(solid(RED), mask) == fill_color(solid(RED), mask)  # chosen on the object's frame
    assert fill(solid(BLUE), mask) == fill(solid(BLUE), empty) == fill_color(solid(RED), mask)


def test_overlay_paints_the_given_colour():
    mask = np.zeros((20, 24), bool)
    mask[5:15, 6:18] = True
    color = VideoFill()(solid(RED), mask)
    picture = np.asarray(overlay(solid(BLUE), mask, color=color))
    expected = np.round(np.array(BLUE) * 0.5 + np.array(color) * 0.5)
    np.testing.assert_array_equal(picture[10, 12], expected)  # inside, away from the outline
