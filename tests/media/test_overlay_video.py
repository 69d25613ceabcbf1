"""refvos.media.overlay_video: the one video overlay renderer (predict, serve, Gradio, demo)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

import refvos.media.visualize
from refvos.media.overlay_video import OverlayGif, display_scaled
from refvos.media.visualize import fill_color

RED, BLUE = (200, 30, 30), (30, 30, 200)


def test_display_scaled_caps_the_long_side_and_keeps_the_mask_binary():
    rgb = np.zeros((100, 300, 3), np.uint8)
    mask = np.zeros((100, 300), bool)
    mask[:, :150] = True
    small, small_mask = display_scaled(rgb, mask, 60)
    assert small.shape == (20, 60, 3) and small_mask.shape == (20, 60) and small_mask.dtype == bool
    assert small_mask[:, :30].all() and not small_mask[:, 30:].any()
    same, same_mask = display_scaled(rgb, mask, None)
    assert same is rgb and same_mask is mask


def test_one_colour_chosen_once_frames_scaled_and_captioned(monkeypatch):
    frames = [
        np.broadcast_to(np.array(c, np.uint8), (40, 48, 3)).copy() for c in (RED, BLUE, RED, BLUE)
    ]
    empty, half = np.zeros((40, 48), bool), np.zeros((40, 48), bool)
    half[:, :24] = True
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(
        refvos.media.visualize,
        "overlay",
        lambda *a, **k: colours.append(k.get("color")) or original(*a, **k),
    )
    buf = io.BytesIO()
    with OverlayGif(buf, "the cat", fps=5, max_side=24) as gif:
        for frame, mask in zip(frames, [empty, half, half, half]):
            gif.add(frame, mask)
    # the colour of the first frame with something to fill (the second, blue), kept after it
    small_blue, small_half = display_scaled(frames[1], half, 24)
    assert colours[1:] == [fill_color(small_blue, small_half)] * 3
    assert fill_color(frames[0], half) != fill_color(frames[1], half)
    out = Image.open(io.BytesIO(buf.getvalue()))
    assert (
        out.n_frames == 4 and out.width == 24 and out.height > 20
    )  # 24 x 20 plus the caption band
    assert out.info["duration"] == 200
