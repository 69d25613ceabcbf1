"""``refvos predict --video``: one overlay colour per expression through the video."""

import numpy as np
from PIL import Image

import refvos.media.visualize
from refvos import save_checkpoint
from refvos.cli import main
from refvos.media.visualize import fill_color
from refvos.predictor import Predictor, prediction
from tests.helpers import make_tiny_model

RED, BLUE = (200, 30, 30), (30, 30, 200)


def test_video_overlay_colour_does_not_flicker(tmp_path, monkeypatch, capsys):
    import torch

    ckpt = save_checkpoint(tmp_path / "tiny.pth", make_tiny_model())
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = [np.broadcast_to(np.array(c, np.uint8), (20, 24, 3)).copy() for c in (RED, BLUE, RED, BLUE)]
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    half = np.zeros((20, 24), bool)
    half[:, :12] = True

    def left_halves(self, frames, expressions, batch_size=None):
        for rgb in frames:
            mask = torch.from_numpy(half)
            yield rgb, [prediction(e, mask, torch.stack([torch.zeros(mask.shape), mask.float()]))
                        for e in expressions]

    monkeypatch.setattr(Predictor, "iter_video_all", left_halves)
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(refvos.media.visualize, "overlay", lambda *a, **k: colours.append(k.get("color")) or original(*a, **k))
    assert main(["predict", "--checkpoint", str(ckpt), "--video", str(folder), "-e", "the cat", "-e", "the dog",
                 "--out-dir", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert fill_color(frames[0], half) != fill_color(frames[1], half)  # per frame it would flicker
    assert len(colours) == 8 and set(colours) == {fill_color(frames[0], half)}
    assert (tmp_path / "out" / "expr_1" / "overlay.gif").is_file()
