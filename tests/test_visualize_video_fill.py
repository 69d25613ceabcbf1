"""A video's overlay colour is chosen once per expression (no flicker), from the first frame
where the object is there."""

import numpy as np

from refvos.media.visualize import FILL_COLORS, VideoFill, fill_color, overlay

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
