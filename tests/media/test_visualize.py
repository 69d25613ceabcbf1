"""Overlays people can read: a fill chosen against the object's colour, a white-and-black
outline at the picture's scale, captions in DejaVu Sans sized to the picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refvos.media.image import load_image
from refvos.media.visualize import (
    FILL_COLORS,
    caption,
    caption_font,
    fill_color,
    line_width,
    overlay,
)


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
    image, mask = _scene(200, (200, 20, 20), (220, 30, 30))  # red on red: a red outline would vanish
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
            ref = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").filter(ImageFilter.MaxFilter(2 * radius + 1))
            np.testing.assert_array_equal(_dilate(mask, radius), np.asarray(ref) > 127)
