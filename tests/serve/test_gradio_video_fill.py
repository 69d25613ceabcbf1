"""The Gradio demo's video: one overlay colour through the video."""

import numpy as np
from PIL import Image

import refvos.media.visualize
from refvos.media.visualize import fill_color
from refvos.serve.gradio_app import segment_video

RED, BLUE = (200, 30, 30), (30, 30, 200)


class LeftHalves:
    def iter_video(self, frames, expression):
        for rgb in frames:
            mask = np.zeros(rgb.shape[:2], bool)
            mask[:, : rgb.shape[1] // 2] = True
            yield rgb, mask, 0.9


def test_video_colour_is_chosen_once(tmp_path, monkeypatch):
    frames = [Image.new("RGB", (24, 20), c) for c in (RED, BLUE, RED)]
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(refvos.media.visualize, "overlay", lambda *a, **k: colours.append(k.get("color")) or original(*a, **k))
    segment_video(LeftHalves(), str(gif), "the cat", str(tmp_path / "out.gif"))
    half = np.zeros((20, 24), bool)
    half[:, :12] = True
    first = np.asarray(Image.open(gif).convert("RGB"))
    assert len(colours) == 3 and set(colours) == {fill_color(first, half)}
    assert (tmp_path / "out.gif").is_file()
