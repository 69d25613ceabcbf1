"""serve's renderer: a video request with several expressions, one backbone pass per frame batch."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

import refvos.media.visualize
from refvos.media.visualize import fill_color
from refvos.predictor import Predictor, prediction
from refvos.serve.decoding import Frames
from refvos.serve.parsing import SegmentRequest
from refvos.serve.render import render
from tests.helpers import make_mixed_model


@pytest.fixture(scope="module")
def predictor():
    return Predictor(make_mixed_model(), device="cpu", precision="fp32", max_size=64)


def test_video_with_two_expressions_matches_the_predictor_per_expression(predictor):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    expressions = ["the red circle", "the dog on the left"]
    calls = []
    encode = predictor.encode_images
    predictor.encode_images = lambda *a, **k: calls.append(1) or encode(*a, **k)
    try:
        doc = render(
            predictor, SegmentRequest("video", Frames.of_arrays("video", frames), expressions)
        )
    finally:
        del predictor.encode_images
    assert len(calls) == 1  # three frames, one batch, one backbone pass for both expressions
    assert [r["expression"] for r in doc["results"]] == expressions
    areas = []
    for result, expression in zip(doc["results"], expressions):
        expected = predictor.predict_video(frames, expression)
        got = [
            np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) > 127
            for b in result["mask_pngs"]
        ]
        assert len(got) == 3
        for g, e, stats in zip(got, expected, result["frames"]):
            np.testing.assert_array_equal(g, e.mask)
            assert stats["area"] == e.area
        areas += [int(g.sum()) for g in got]
    assert min(areas) > 0 and max(areas) < 40 * 56  # mixed masks: the comparison can fail


# serve's video answer keeps one overlay colour per expression through the video.
RED, BLUE = (200, 30, 30), (30, 30, 200)


class FixedMasks:
    """A stand-in predictor: the same left-half mask for every frame and expression."""

    def iter_video_all(self, frames, expressions, total_frames=None):
        import torch

        for rgb in frames:
            mask = torch.zeros(rgb.shape[:2], dtype=torch.bool)
            mask[:, : rgb.shape[1] // 2] = True
            logits = torch.stack([torch.zeros(mask.shape), mask.float()])
            yield rgb, [prediction(e, mask, logits) for e in expressions]


def test_video_overlays_keep_one_colour_per_expression(monkeypatch):
    frames = [
        np.broadcast_to(np.array(c, np.uint8), (20, 24, 3)).copy() for c in (RED, BLUE, RED, BLUE)
    ]
    half = np.zeros((20, 24), bool)
    half[:, :12] = True
    assert fill_color(frames[0], half) != fill_color(frames[1], half)  # per frame it would flicker
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(
        refvos.media.visualize,
        "overlay",
        lambda *a, **k: colours.append(k.get("color")) or original(*a, **k),
    )
    doc = render(
        FixedMasks(),
        SegmentRequest("video", Frames.of_arrays("video", frames), ["the cat", "the dog"]),
    )
    assert len(doc["results"]) == 2 and len(colours) == 8
    assert set(colours) == {fill_color(frames[0], half)}


@pytest.mark.parametrize("expressions", [1, 8])
def test_video_answer_of_noise_is_at_most_2_bytes_of_json_per_pixel_of_work(predictor, expressions):
    """The premise of ``refvos.serve.budget.MAX_WORK_CAP`` (a memory bound): a video's answer keeps a GIF
    frame and a mask per frame and expression; on noise frames (what compresses worst) its JSON
    is at most 2 bytes per pixel of work, so with the copies made to send it about 6."""
    import json

    from refvos.serve.budget import request_work
    from refvos.serve.limits import Limits

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    req = SegmentRequest(
        "video", Frames.of_arrays("video", frames), [f"thing {i}" for i in range(expressions)]
    )
    size = len(json.dumps(render(predictor, req, Limits(max_size=64))))
    work = request_work([(64, 64)] * 5, 64, expressions)
    assert size <= 2 * work, (size, work)
