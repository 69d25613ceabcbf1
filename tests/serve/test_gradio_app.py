"""The optional Gradio demo: its functions run the shared Predictor without Gradio installed;
the interface itself is built only where Gradio is (it is an optional extra, not in CI)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from PIL import Image

import refvos.media.visualize
from refvos.errors import InputError
from refvos.media.visualize import fill_color
from refvos.predictor import Predictor
from refvos.serve.gradio_app import segment_video
from tests.helpers import make_tiny_model, rgb


@pytest.fixture(scope="module")
def predictor():
    return Predictor(make_tiny_model().eval(), device="cpu", precision="fp32", max_size=64)


def test_module_imports_without_gradio(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    module = importlib.reload(importlib.import_module("refvos.serve.gradio_app"))
    assert callable(module.segment_image)
    with pytest.raises(ImportError):
        module.build_interface(object())


def test_segment_image_matches_the_predictor(predictor):
    from refvos.serve.gradio_app import segment_image

    image = rgb(40, 52)
    overlay, mask, summary = segment_image(predictor, image, "  the dog ")
    expected = predictor.predict_all(image, ["the dog"])[0]
    assert overlay.shape == (40, 52, 3) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask > 0, expected.mask)
    assert f"area {expected.area} px" in summary
    with pytest.raises(InputError, match="expression"):
        segment_image(predictor, image, "   ")
    with pytest.raises(InputError, match="image"):
        segment_image(predictor, None, "x")


def test_segment_video_writes_an_overlaid_gif(predictor, tmp_path):
    from refvos.serve.gradio_app import segment_video

    clip = tmp_path / "clip.gif"
    frames = [Image.fromarray(rgb(32, 40, seed=i)) for i in range(3)]
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = segment_video(predictor, str(clip), "the bird", str(tmp_path / "out.gif"))
    gif = Image.open(out)
    assert gif.n_frames == 3 and gif.size[0] == 40


def test_interface_builds_where_gradio_is_installed(predictor):
    pytest.importorskip("gradio", reason="the optional refvos[gradio] extra is not installed")
    from refvos.serve.gradio_app import build_interface

    demo = build_interface(predictor)
    assert demo.title.startswith("refvos")


# The Gradio demo's video: one overlay colour through the video.
RED, BLUE = (200, 30, 30), (30, 30, 200)


class LeftHalves:
    def iter_video(self, frames, expression):
        for frame in frames:
            mask = np.zeros(frame.shape[:2], bool)
            mask[:, : frame.shape[1] // 2] = True
            yield frame, mask, 0.9


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
