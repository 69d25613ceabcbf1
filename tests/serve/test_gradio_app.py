"""refvos.serve.gradio_app, the optional Gradio demo: its functions run the shared Predictor
without Gradio installed; the interface is built and driven in a headless Chromium (Gradio is in
the test environment: ``make venv`` installs it from requirements-nodeps.txt)."""

from __future__ import annotations

import importlib
import socket
import sys

import numpy as np
import pytest
from PIL import Image

import refvos.media.visualize
from refvos.errors import InputError
from refvos.media.visualize import fill_color
from refvos.predictor import Predictor
from refvos.serve.gradio_app import segment_video
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, browser_or_fail, make_tiny_model, rgb


def _require_gradio() -> None:
    """Gradio is part of the test environment: a missing one fails (as a missing Chromium does)."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        pytest.fail(
            "gradio is missing: `make venv` installs it (requirements-nodeps.txt)", pytrace=False
        )


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
    _require_gradio()
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
    monkeypatch.setattr(
        refvos.media.visualize,
        "overlay",
        lambda *a, **k: colours.append(k.get("color")) or original(*a, **k),
    )
    segment_video(LeftHalves(), str(gif), "the cat", str(tmp_path / "out.gif"))
    half = np.zeros((20, 24), bool)
    half[:, :12] = True
    first = np.asarray(Image.open(gif).convert("RGB"))
    assert len(colours) == 3 and set(colours) == {fill_color(first, half)}
    assert (tmp_path / "out.gif").is_file()


# The Gradio page in a real headless Chromium, as tests/serve/test_browser.py does for serve's page.
@pytest.mark.browser
@pytest.mark.slow
def test_gradio_page_in_a_browser(predictor, tmp_path, monkeypatch):
    sync_playwright = browser_or_fail()
    _require_gradio()
    from refvos.serve.gradio_app import build_interface, segment_image

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    image = np.zeros((40, 52, 3), np.uint8)
    image[10:30, 20:40] = (220, 30, 30)
    Image.fromarray(image).save(tmp_path / "photo.png")
    expected = segment_image(predictor, image, "the red box")[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_interface(predictor)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(demo.local_url, timeout=60_000)
                page.get_by_role("button", name="Segment").first.wait_for(timeout=60_000)
                assert page.title().startswith("refvos")

                # no expression: the app's one-line error is shown on the page
                page.locator("input[type=file]").first.set_input_files(str(tmp_path / "photo.png"))
                page.get_by_role("button", name="Segment").first.click()
                page.get_by_text("type an expression that describes one object").first.wait_for(
                    timeout=60_000
                )

                page.get_by_label("expression").first.fill("the red box")
                page.get_by_role("button", name="Segment").first.click()
                result = page.get_by_label("result")
                for _ in range(600):
                    if result.input_value():
                        break
                    page.wait_for_timeout(100)
                assert result.input_value() == expected
                # the picture, its overlay and its mask, decoded by the browser at the picture's size
                widths = page.locator("img[src*='gradio_api/file=']").evaluate_all(
                    "els => els.map(e => e.naturalWidth)"
                )
                assert widths == [52, 52, 52]
                assert not errors, errors
            finally:
                browser.close()
    finally:
        demo.close()


def test_video_over_the_work_budget_is_refused_before_decoding(predictor, tmp_path, monkeypatch):
    """96 frames of 2048 x 2048 (a 1 MB GIF; +3 GB in the demo before): refused from the headers,
    the same budget as serve's; no frame decoded, no GIF written."""
    import refvos.media.video
    from refvos.serve.budget import DEFAULT_MAX_WORK, WorkBudgetError
    from refvos.serve.gradio_app import segment_video
    from tests.helpers import flat_gif

    clip = tmp_path / "big.gif"
    clip.write_bytes(flat_gif(96, 2048, 2048))
    monkeypatch.setattr(
        refvos.media.video,
        "pil_frames",
        lambda *a, **k: pytest.fail("decoded before the budget check"),
    )
    with pytest.raises(WorkBudgetError, match=f"more than the budget of {DEFAULT_MAX_WORK:,}"):
        segment_video(predictor, str(clip), "the dog", str(tmp_path / "out.gif"))
    assert not (tmp_path / "out.gif").exists()


def test_video_overlays_are_drawn_at_the_model_size(predictor, tmp_path):
    """Frames of 300 x 200 with a predictor at max_size 64: the GIF's frames are 64 wide (the
    overlay drawn at the model's size, not at full resolution), one per frame."""
    from refvos.serve.gradio_app import segment_video
    from tests.helpers import flat_gif

    clip = tmp_path / "clip.gif"
    clip.write_bytes(flat_gif(5, 200, 300))
    out = segment_video(predictor, str(clip), "the bird", str(tmp_path / "out.gif"))
    with Image.open(out) as gif:
        assert gif.n_frames == 5 and gif.size[0] == 64


def test_expression_length_is_capped_as_in_serve(predictor, tmp_path):
    from refvos.serve.budget import MAX_EXPRESSION_CHARS
    from refvos.serve.gradio_app import segment_image, segment_video
    from refvos.serve.limits import MAX_EXPRESSION_CHARS as SERVE_CAP

    assert SERVE_CAP == MAX_EXPRESSION_CHARS  # one cap, shared
    long = "x" * (MAX_EXPRESSION_CHARS + 1)
    with pytest.raises(InputError, match=f"more than the limit of {MAX_EXPRESSION_CHARS}"):
        segment_image(predictor, rgb(40, 52), long)
    with pytest.raises(InputError, match=f"more than the limit of {MAX_EXPRESSION_CHARS}"):
        segment_video(predictor, str(tmp_path / "any.gif"), long, str(tmp_path / "out.gif"))


def test_output_folder_holds_the_newest_files_and_is_removed(tmp_path):
    """Each call gets a new file in ONE folder (not a refvos-gradio-* folder per call); at most
    ``keep`` files stay; cleanup (also registered for the process's exit) removes the folder."""
    from refvos.serve.gradio_app import OutputFolder

    outputs = OutputFolder(keep=3)
    try:
        paths = []
        for i in range(10):
            path = outputs.new_file()
            path.write_bytes(b"GIF" + bytes([i]))
            paths.append(path)
        assert len(set(paths)) == 10 and all(p.parent == outputs.path for p in paths)
        assert sorted(outputs.path.iterdir()) == sorted(paths[-3:])
    finally:
        outputs.cleanup()
    assert not outputs.path.exists()


class TimedPredictor:
    """A real predictor whose ``predict_all`` also advances a simulated clock by 0.5 s."""

    def __init__(self, inner) -> None:
        self.inner, self.now = inner, 0.0
        self.max_size = inner.max_size

    def predict_all(self, image, expressions):
        self.now += 0.5
        return self.inner.predict_all(image, expressions)


def test_demo_budget_is_measured_from_one_expression(predictor):
    """At max_size 64 one pass (0.5 s simulated: the warm-up pass untimed) is 2 x 64^2 pixels of
    work: 30 s buy 30 x 8192 / 0.5 = 491,520."""
    from refvos.serve.gradio_app import measure_demo_budget

    timed = TimedPredictor(predictor)
    measured = measure_demo_budget(timed, 30.0, clock=lambda: timed.now)
    assert measured.seconds == {1: 0.5} and measured.side == 64
    assert measured.max_work == 491_520 and timed.now == 1.5


def test_interface_with_a_pixel_budget_measures_nothing(predictor, monkeypatch):
    pytest.importorskip("gradio", reason="the optional refvos[gradio] extra is not installed")
    import refvos.serve.gradio_app as app

    monkeypatch.setattr(app, "measure_demo_budget", lambda *a, **k: pytest.fail("measured"))
    assert app.build_interface(predictor, max_work=5000).title.startswith("refvos")
