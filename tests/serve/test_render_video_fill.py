"""serve's video answer keeps one overlay colour per expression through the video."""

import numpy as np

import refvos.media.visualize
from refvos.media.visualize import fill_color
from refvos.predictor import prediction
from refvos.serve.parsing import SegmentRequest
from refvos.serve.render import render

RED, BLUE = (200, 30, 30), (30, 30, 200)


class FixedMasks:
    """A stand-in predictor: the same left-half mask for every frame and expression."""

    def iter_video_all(self, frames, expressions):
        import torch

        for rgb in frames:
            mask = torch.zeros(rgb.shape[:2], dtype=torch.bool)
            mask[:, : rgb.shape[1] // 2] = True
            logits = torch.stack([torch.zeros(mask.shape), mask.float()])
            yield rgb, [prediction(e, mask, logits) for e in expressions]


def test_video_overlays_keep_one_colour_per_expression(monkeypatch):
    frames = [np.broadcast_to(np.array(c, np.uint8), (20, 24, 3)).copy() for c in (RED, BLUE, RED, BLUE)]
    half = np.zeros((20, 24), bool)
    half[:, :12] = True
    assert fill_color(frames[0], half) != fill_color(frames[1], half)  # per frame it would flicker
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(refvos.media.visualize, "overlay", lambda *a, **k: colours.append(k.get("color")) or original(*a, **k))
    doc = render(FixedMasks(), SegmentRequest("video", frames, ["the cat", "the dog"]))
    assert len(doc["results"]) == 2 and len(colours) == 8
    assert set(colours) == {fill_color(frames[0], half)}
