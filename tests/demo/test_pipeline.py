"""The demo pipeline (``make demo``) at its tiny preset: same code path, a few seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from refvos import load_checkpoint
from refvos.data import build_dataset
from refvos.data.scenes import make_video_clip
from refvos.demo import PRESETS, TEST_SPLITS, run_demo
from refvos.media.image import denormalize
from refvos.metrics import RefSegMetrics, region_similarity
from refvos.predictor import Predictor

METRIC_KEYS = ["overall_iou", "mean_iou"] + [f"precision@0.{k}" for k in range(5, 10)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    result = run_demo(out, preset="tiny", seed=0)
    return out, result


def test_writes_metrics(demo_run):
    out, result = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result))
    for key in METRIC_KEYS:
        assert 0.0 <= metrics[key] <= 1.0, key
    for bucket in metrics["breakdown"].values():
        assert all(0.0 <= bucket[k] <= 1.0 for k in METRIC_KEYS)
    assert {"split/testA", "split/testB"} <= set(metrics["breakdown"])
    recipe = PRESETS["tiny"]
    assert metrics["iterations"] == recipe.training.iterations and not metrics["time_cap_hit"]
    # the run's plan: the tiny preset is shorter than the timed steps, so it keeps its iterations
    assert (
        metrics["iterations_planned"] == recipe.training.iterations
        and not metrics["plan_shortened"]
    )
    assert metrics["seconds_per_step"] is None
    assert metrics["train_images_seen"] == recipe.training.iterations * recipe.training.batch_size
    assert metrics["wall_time_s"] > 0 and metrics["device"] == "cpu"
    assert metrics["recipe"]["image_size"] == recipe.image_size
    assert metrics["test_splits"] == list(TEST_SPLITS)
    assert 0.0 <= metrics["video"]["mean_j"] <= 1.0
    # the precision used and why (the tiny preset asks for fp32 explicitly)
    assert (
        metrics["precision"]["precision"] == metrics["recipe"]["precision_used"] == recipe.precision
    )
    assert metrics["precision"]["source"] == "explicit" and isinstance(
        metrics["time_cap_hit"], bool
    )


def test_writes_pictures(demo_run):
    out, result = demo_run
    assert len(result["overlays"]) == PRESETS["tiny"].overlays
    for rel in result["overlays"]:
        with Image.open(out / rel) as im:
            assert im.format == "PNG" and im.width >= 128
    with Image.open(out / "training_curve.png") as im:
        assert im.format == "PNG"
    with Image.open(out / "video.gif") as im:
        assert im.format == "GIF" and im.n_frames == PRESETS["tiny"].video_frames
    assert not list(out.glob("**/.*.tmp"))  # atomic writes leave no temporary file


def test_checkpoint_reproduces_the_demo_predictions(demo_run):
    """model.pth loads with load_checkpoint and gives the in-memory model's predictions."""
    out, result = demo_run
    model = load_checkpoint(out / "model.pth")
    assert model.config.variant == "refvos_lite"
    recipe = PRESETS["tiny"]
    predictor = Predictor(model, device="cpu", precision=recipe.precision, channels_last=False)

    # the video: the same masks, frame by frame, as the demo's own Predictor run
    frames, gts, expression = make_video_clip(recipe.video_frames, recipe.image_size, seed=1)
    assert expression == result["video"]["expression"]
    masks = [r.mask for r in predictor.predict_video(frames, expression)]
    j = [round(float(region_similarity(m, g)), 4) for m, g in zip(masks, gts)]
    assert j == result["video"]["j_per_frame"]

    # the test splits, read as a user would, give the demo's metrics
    metrics = RefSegMetrics()
    for split in TEST_SPLITS:
        ds = build_dataset(
            "refcoco", out / "data", split, "eval", max_tokens=model.config.max_tokens
        )
        for sample in ds:
            pred = predictor.predict(denormalize(sample["image"]), sample["sentence"])
            gt = sample["mask"].numpy()
            metrics.update(pred, gt, ignore=gt == 255)
    got = metrics.compute()
    assert got["num_samples"] == result["num_samples"]
    np.testing.assert_allclose(got["overall_iou"], result["overall_iou"], atol=2e-3)
    np.testing.assert_allclose(got["mean_iou"], result["mean_iou"], atol=2e-3)


def test_unknown_preset(tmp_path):
    from refvos.errors import InputError

    with pytest.raises(InputError, match="preset"):
        run_demo(tmp_path, preset="huge")


def test_cli_tiny(tmp_path, capsys):
    from refvos.cli import main

    assert main(["demo", "--out", str(tmp_path / "o"), "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "overall IoU" in printed and (tmp_path / "o" / "metrics.json").is_file()


def test_cli_says_when_the_plan_shortened_the_run(demo_run, monkeypatch, capsys, tmp_path):
    """A slower machine's metrics (the plan cut 6,000 steps to 3,100): the summary says so."""
    import refvos.demo.pipeline
    from refvos.cli import main

    _, result = demo_run
    slow = {
        **result,
        "iterations": 3100,
        "iterations_planned": 3100,
        "plan_shortened": True,
        "seconds_per_step": 0.147,
        "recipe": {**result["recipe"], "training": {"iterations": 6000, "time_cap_s": 480.0}},
    }
    monkeypatch.setattr(refvos.demo, "run_demo", lambda *a, **k: slow)
    assert main(["demo", "--out", str(tmp_path / "o"), "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert (
        "trained 3100 iterations (planned to 3100 of 6000 to fit the 480 s budget at 0.147 s a step)"
        in printed
    )


def test_video_overlay_keeps_one_colour_through_the_clip(tmp_path, monkeypatch):
    import refvos.demo.pipeline
    import refvos.media.visualize
    from refvos.media.visualize import fill_color
    from refvos.predictor import Prediction
    from tests.helpers import make_tiny_model

    recipe = PRESETS["tiny"]
    frames, _, _ = make_video_clip(recipe.video_frames, recipe.image_size, seed=1)
    half = np.zeros(frames[0].shape[:2], bool)
    half[:, : half.shape[1] // 2] = True
    monkeypatch.setattr(
        Predictor,
        "predict_video",
        lambda self, frames, expression: [
            Prediction(expression, half, 1.0, int(half.sum()), None) for _ in frames
        ],
    )
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(
        refvos.media.visualize,
        "overlay",
        lambda *a, **k: colours.append(k["color"]) or original(*a, **k),
    )
    refvos.demo.pipeline.segment_video(make_tiny_model().eval(), tmp_path, recipe, "fp32", seed=1)
    factor = refvos.demo.pipeline._display_factor(recipe.image_size)
    per_frame = {
        fill_color(
            refvos.demo.pipeline._upscale(f, factor), refvos.demo.pipeline._upscale(half, factor)
        )
        for f in frames
    }
    assert len(colours) == recipe.video_frames and len(set(colours)) == 1
    assert colours[0] in per_frame
