"""The offline demo behind ``make demo``: synthetic data -> CPU training -> test metrics -> video.

:func:`run_demo` writes the built-in synthetic RefCOCO data (:func:`~refvos.data.synthetic.make_refcoco`),
reads it back through ``build_dataset("refcoco", ...)``, trains ``refvos_lite`` on the CPU,
evaluates on the held-out ``testA`` + ``testB`` splits (never trained on), segments a synthetic
video with :class:`~refvos.predictor.Predictor` and writes ``out_dir/``::

    metrics.json           overall / mean IoU, precision@0.5..0.9 (fractions), per split and per
                           expression category, the video's J, wall time, images seen, recipe, device
    overlays/NN.png        test images: prediction in red, ground-truth outline in green, expression
    training_curve.png     loss and batch IoU per iteration
    video.gif              the synthetic video with its predicted masks and expression
    model.pth              the trained network in refvos's checkpoint format (``load_checkpoint``)
    data/                  the generated data set (RefCOCO layout)

The recipe (:data:`PRESETS`; the default trains on Lite0 stage 2 with a 64-channel head): the
MiniLM sentence encoder stays frozen and each distinct expression's sentence vector is computed
once; the ImageNet EfficientNet-Lite0 backbone is frozen except its last ``tuned_blocks`` blocks,
so the frozen part runs once per image and is cached (:mod:`refvos.demo.feature_cache`); the
RefVOS head and those blocks are trained by :func:`refvos.demo.head_trainer.train_head` (AdamW,
linear warm-up and cosine decay to 0 over a run planned to fit the time budget) and scored on the
cache by :func:`~refvos.demo.head_trainer.score_split`. This module holds the presets, the
orchestration (:func:`run_demo`) and the outputs.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..data.scenes import make_video_clip
from ..data.synthetic import make_refcoco
from ..errors import InputError
from ..io import atomic_write, atomic_write_json
from ..media.overlay_video import OverlayGif
from ..media.visualize import overlay, plot_curves, save_image
from ..metrics import region_similarity
from ..modeling import RefVOS, build_model
from ..modeling.surgery import set_dropout, split_backbone
from ..predictor import Predictor
from ..runtime import choose_precision, cpu_model
from .feature_cache import CachedSplit, SentenceTable, encode_split
from .head_trainer import (
    FOREGROUND_WEIGHT,
    PLAN_RECHECK,
    PLAN_SHARE,
    PLAN_WINDOW,
    HeadTrainConfig,
    head_step_workload,
    score_split,
    train_head,
)

TEST_SPLITS = ("testA", "testB")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a demo run (stored in ``metrics.json`` and the checkpoint).

    Attributes:
        num_images: synthetic RefCOCO images; of every 20, 16 are ``train``, 2 ``val``, 1
            ``testA`` and 1 ``testB``.
        image_size: side in pixels of the generated images; training and evaluation run at it.
        backbone_stage: the EfficientNet-Lite0 stage whose features feed the head (2: 40 channels
            at stride 8, which keep the colour and shape detail the expressions name).
        head_channels: width of the RefVOS head.
        atrous_rates: the head's ASPP dilations (RefVOS's 12/24/36 are for 60x60 feature maps).
        dropout: dropout probability in the head while training (RefVOS uses 0.5).
        tuned_blocks: trailing blocks of the backbone trained with the head (their ImageNet BN
            statistics are kept); the blocks before them are frozen and run once per image.
        training: the head trainer's optimisation
            (:class:`~refvos.demo.head_trainer.HeadTrainConfig`): AdamW, ``batch_size`` images
            a step (each with every training expression about it), linear warm-up over
            ``warmup`` steps then cosine to 0 at the last step, ``iterations`` steps at most in a
            ``time_cap_s`` training budget. The trainer times its steps 10 to 40 and then plans
            ``min(iterations, the steps that fit in 95% of time_cap_s)`` (:data:`PLAN_WINDOW`,
            :data:`PLAN_SHARE` of :mod:`refvos.demo.head_trainer`), and every
            :data:`PLAN_RECHECK` steps shortens the plan if the recent steps say it no longer
            fits, so that on a slower (or slowing) CPU the run is shorter but its decay still ends
            at 0 instead of being cut by the cap, which stays as a safety net (``metrics.json``:
            ``iterations_planned``, ``iterations`` run, ``seconds_per_step`` (the latest rate),
            ``plan_shortened``, ``plan_rechecks_shortened``, ``time_cap_hit``).
        precision: autocast precision (``auto``: the faster of fp32 and bf16 for one training step
            on this CPU, measured once and cached; ``metrics.json``'s ``precision`` says which and why).
        video_frames: frames of the synthetic video.
        overlays: test overlays written.
    """

    num_images: int
    image_size: int
    backbone_stage: int
    head_channels: int
    atrous_rates: tuple[int, int, int]
    dropout: float
    tuned_blocks: int
    training: HeadTrainConfig
    precision: str
    video_frames: int
    overlays: int


# 128-pixel images give 16x16 stride-8 maps: ASPP rates 3/6/9 are RefVOS's 12/24/36 at 60x60
_DEFAULT = Recipe(
    num_images=1000,
    image_size=128,
    backbone_stage=2,
    head_channels=64,
    atrous_rates=(3, 6, 9),
    dropout=0.0,
    tuned_blocks=1,
    training=HeadTrainConfig(
        iterations=6000, batch_size=6, lr=3e-3, weight_decay=1e-4, warmup=20, time_cap_s=480.0
    ),
    precision="auto",
    video_frames=12,
    overlays=8,
)

PRESETS: dict[str, Recipe] = {
    "default": _DEFAULT,
    # the same recipe on fewer images and steps (about 2 minutes)
    "quick": replace(
        _DEFAULT,
        num_images=400,
        training=replace(_DEFAULT.training, iterations=1500, time_cap_s=240.0),
    ),
    "tiny": Recipe(
        num_images=20,
        image_size=64,
        backbone_stage=2,
        head_channels=16,
        atrous_rates=(2, 4, 6),
        dropout=0.0,
        tuned_blocks=1,
        training=HeadTrainConfig(
            iterations=3, batch_size=4, lr=1e-3, weight_decay=1e-4, warmup=1, time_cap_s=60.0
        ),
        precision="fp32",
        video_frames=4,
        overlays=2,
    ),
}


def set_threads() -> int:
    """Use every core this process may run on; returns the count."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def _upscale(a: np.ndarray, factor: int) -> np.ndarray:
    return a.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else a


def _display_factor(size: int) -> int:
    """Nearest-neighbour magnification so that small pictures and their captions are legible."""
    return max(1, math.ceil(256 / size))


def write_overlays(out_dir: Path, data: CachedSplit, preds: np.ndarray, count: int) -> list[str]:
    """``count`` test overlays spread over the test set; returns their paths relative to ``out_dir``."""
    picks = np.linspace(0, len(data) - 1, num=min(count, len(data))).round().astype(int)
    factor = _display_factor(data.masks.shape[-1])
    paths = []
    for n, i in enumerate(picks):
        image = data.images[int(data.image_index[i])]
        gt = data.masks[i].numpy() == 1
        pic = overlay(
            _upscale(image, factor),
            _upscale(preds[i], factor),
            data.sentences[i],
            gt=_upscale(gt, factor),
        )
        rel = f"overlays/{n:02d}.png"
        save_image(pic, out_dir / rel)
        paths.append(rel)
    return paths


def segment_video(
    model: RefVOS, out_dir: Path, recipe: Recipe, precision: str, seed: int
) -> dict[str, Any]:
    """Segment a synthetic clip with :class:`Predictor` (the ``refvos predict --video`` path) and
    write ``video.gif``; returns its expression, per-frame J and mean J."""
    frames, gts, expression = make_video_clip(recipe.video_frames, recipe.image_size, seed=seed)
    predictor = Predictor(model, device="cpu", precision=precision, compile=False)
    masks = [r.mask for r in predictor.predict_video(frames, expression)]
    j = [region_similarity(m, g) for m, g in zip(masks, gts)]
    factor = _display_factor(recipe.image_size)
    gif = io.BytesIO()  # written whole, atomically, as the demo's other outputs
    with OverlayGif(gif, expression, fps=4) as writer:
        for f, m in zip(frames, masks):
            writer.add(_upscale(f, factor), _upscale(m, factor))
    atomic_write(out_dir / "video.gif", lambda f: f.write(gif.getvalue()))
    return {
        "expression": expression,
        "frames": len(frames),
        "mean_j": round(float(np.mean(j)), 4),
        "j_per_frame": [round(float(x), 4) for x in j],
        "gif": "video.gif",
    }


def _sentence_categories(root: Path, splits: tuple[str, ...]) -> dict[int, list[str]]:
    """sent_id -> the RefVOS categories the generator tagged it with."""
    from ..data import REFER

    refer = REFER(root, "refcoco", "unc")
    return {
        sid: list(s.get("categories", []))
        for sid, s in refer.Sents.items()
        if refer.sentToRef[sid]["split"] in splits
    }


def device_info(threads: int) -> dict[str, Any]:
    return {"device": "cpu", "cpu": cpu_model(), "threads": threads, "torch": torch.__version__}


def run_demo(out_dir: str | os.PathLike, preset: str = "default", seed: int = 0) -> dict[str, Any]:
    """Run the whole demo and write ``out_dir`` (see the module docstring); returns ``metrics.json``'s content."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    recipe = PRESETS[preset]
    start = time.perf_counter()
    out_dir = Path(out_dir)
    threads = set_threads()
    torch.manual_seed(seed)
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 2)
        return now

    t = time.perf_counter()
    root = make_refcoco(
        out_dir / "data", num_images=recipe.num_images, image_size=recipe.image_size, seed=seed
    )
    t = lap("generate_data_s", t)
    model = build_model(
        "refvos_lite",
        backbone_stage=recipe.backbone_stage,
        head_channels=recipe.head_channels,
        atrous_rates=recipe.atrous_rates,
    ).eval()
    model.config.input_size = recipe.image_size  # refvos predict on model.pth scales pictures to it
    set_dropout(model.segmenter.classifier, recipe.dropout)
    for p in model.parameters():
        p.requires_grad_(False)
    frozen, tuned = split_backbone(model, recipe.tuned_blocks)
    for p in (*tuned.parameters(), *model.segmenter.classifier.parameters()):
        p.requires_grad_(True)
    t = lap("build_model_s", t)
    choice = choose_precision(
        recipe.precision,
        torch.device("cpu"),
        head_step_workload(model, frozen, tuned, recipe.training.batch_size, recipe.image_size)
        if recipe.precision == "auto"
        else None,
    )
    precision = choice.precision
    t = lap("choose_precision_s", t)
    table = SentenceTable()
    train = encode_split(model, root, ("train",), table, precision, frozen)
    test = encode_split(model, root, TEST_SPLITS, table, precision, frozen)
    text = table.encode(model)
    t = lap("encode_s", t)
    log = train_head(model, tuned, train, text, recipe.training, precision, seed)
    t = lap("train_s", t)
    metrics, preds = score_split(
        model, tuned, test, text, precision, _sentence_categories(root, TEST_SPLITS)
    )
    overlays = write_overlays(out_dir, test, preds, recipe.overlays)
    t = lap("evaluate_s", t)
    curve = log.pop("curve")
    plot_curves(
        {
            "loss": [(r.step, r.loss) for r in curve],
            "batch IoU": [(r.step, r.batch_iou) for r in curve],
        },
        out_dir / "training_curve.png",
        xlabel="iteration",
        title=f"refvos_lite head on synthetic RefCOCO ({preset})",
    )
    video = segment_video(model, out_dir, recipe, precision, seed + 1)
    t = lap("video_s", t)
    result = {
        **{k: v for k, v in metrics.items() if k != "breakdown"},
        "test_splits": list(TEST_SPLITS),
        "breakdown": metrics["breakdown"],
        **log,
        "train_samples": len(train),
        "train_images": len(train.images),
        "distinct_expressions": len(table.index),
        "video": video,
        "overlays": overlays,
        "training_curve": "training_curve.png",
        "checkpoint": "model.pth",
        "preset": preset,
        "seed": seed,
        "precision": choice.to_json(),
        "recipe": {
            **asdict(recipe),
            "precision_used": precision,
            "frozen": [
                "text_encoder",
                f"segmenter.backbone except its last {recipe.tuned_blocks} block(s)",
            ],
            "trained": [
                f"segmenter.backbone's last {recipe.tuned_blocks} block(s) (BN statistics kept)",
                "segmenter.classifier",
            ],
            "optimizer": "AdamW",
            "schedule": "linear warm-up, cosine to 0 at the planned last step",
            "plan": f"steps {PLAN_WINDOW[0]}-{PLAN_WINDOW[1]} timed, run planned to fill "
            f"{PLAN_SHARE:.0%} of time_cap_s, shortened if needed every {PLAN_RECHECK} steps",
            "loss": f"cross-entropy (referent weight {FOREGROUND_WEIGHT:g}) + soft Dice",
        },
        **device_info(threads),
    }
    save_checkpoint(
        out_dir / "model.pth",
        model,
        demo={"preset": preset, "seed": seed, "overall_iou": result["overall_iou"]},
    )
    t = lap("checkpoint_s", t)
    result["timings"] = timings
    result["wall_time_s"] = round(time.perf_counter() - start, 2)
    atomic_write_json(out_dir / "metrics.json", result)
    return result
