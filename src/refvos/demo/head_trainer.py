"""Training and scoring RefVOS's head on cached frozen features (``make demo``'s trainer).

The sentence encoder and the first blocks of the backbone are frozen, their outputs cached once
(:mod:`refvos.demo.feature_cache`); :func:`train_head` trains the last ``tuned`` backbone blocks
(their BatchNorm statistics kept) and ``model.segmenter.classifier`` on that cache:

- each step takes ``batch_size`` images (epochs of a seeded permutation) with every sentence
  about them; the tuned blocks and the head's sentence-independent part (ASPP) run once per
  image, the language fusion once per sentence (:func:`fused_logits`);
- loss: cross-entropy (referent pixels weighted :data:`FOREGROUND_WEIGHT`) plus soft Dice
  (:func:`segmentation_loss`);
- AdamW with a linear warm-up then cosine decay to 0
  (:class:`~refvos.engine.schedules.CosineSchedule`) over a run whose length is planned to a time
  budget (:class:`StepPlan`): at most ``iterations`` steps, fewer where they would not fit, so
  that the decay always ends at 0 instead of being cut by the time cap.

:func:`score_split` scores the trained network on a cached split through the model's inference
path (``model.decode`` on the tuned blocks' features) with RefVOS's IoU metrics.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.transforms import IGNORE_INDEX
from ..deps import require
from ..engine.schedules import CosineSchedule
from ..metrics import RefSegMetrics
from ..modeling import RefVOS
from ..modeling.postprocess import foreground_mask
from ..runtime import Workload, autocast, flush_denormals, module_signature
from .feature_cache import CachedSplit

FOREGROUND_WEIGHT = 5.0  # cross-entropy weight of the referent's pixels
PLAN_WINDOW = (10, 40)  # steps timed to plan a run: after the first steps' one-off costs
PLAN_SHARE = 0.95  # share of the time cap a run is planned to fill (the rest: step-time noise)
PLAN_RECHECK = 250  # steps between checks of the plan against the recent step rate


@dataclass(frozen=True)
class HeadTrainConfig:
    """The optimisation of :func:`train_head`.

    Attributes:
        iterations: optimiser steps at most (fewer where :class:`StepPlan` finds they would not
            fit in ``time_cap_s``).
        batch_size: images per step, each with every training sentence about it.
        lr: AdamW peak learning rate (linear warm-up over ``warmup`` steps, then cosine to 0 at
            the planned last step).
        weight_decay: AdamW weight decay.
        warmup: warm-up steps.
        time_cap_s: the training loop's time budget: the run is planned to fill
            :data:`PLAN_SHARE` of it, and stops if it reaches it all the same.
    """

    iterations: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int
    time_cap_s: float


class StepPlan:
    """How many steps a run takes: ``iterations`` at most, fewer where they would not fit in its
    time budget, so that a schedule over :attr:`total` steps runs to its end.

    The steps ``window[0]`` to ``window[1]`` are timed (the first steps pay one-off costs:
    allocation, caches, lazy initialisation); at step ``window[1]`` the run is planned to
    ``total = min(iterations, window[1] + steps that fit in share * time_cap_s from there)``.
    Every ``recheck`` steps after that the plan is checked against the rate of the steps since
    the last check and shortened if they would no longer fit (a machine that slowed down: other
    processes, a lower clock); it is never lengthened, so the schedule only moves forward.
    ``time_cap_s`` stays a safety net: :meth:`proceed` refuses any step once it is exceeded, and
    says so in :attr:`cap_hit`. A run shorter than the window is never planned
    (``seconds_per_step`` None). :attr:`seconds_per_step` is the latest rate measured.

    ``clock`` (seconds, monotonic; :func:`time.perf_counter` by default) is read once at
    construction, once per :meth:`proceed` that runs a step and once per :meth:`elapsed`.
    """

    def __init__(
        self,
        iterations: int,
        time_cap_s: float,
        clock: Callable[[], float] = time.perf_counter,
        window: tuple[int, int] = PLAN_WINDOW,
        share: float = PLAN_SHARE,
        recheck: int = PLAN_RECHECK,
    ) -> None:
        if not 0 <= window[0] < window[1]:
            raise ValueError(f"window must be two increasing steps >= 0, got {window}")
        if recheck < 1:
            raise ValueError(f"recheck must be at least 1 step, got {recheck}")
        self.requested = iterations
        self.total = iterations
        self.time_cap_s = time_cap_s
        self.clock, self.window, self.share, self.recheck = clock, window, share, recheck
        self.seconds_per_step: float | None = None
        self.replans = 0  # times a check shortened the plan
        self.cap_hit = False
        self._start = clock()
        self._mark: tuple[int, float] | None = None  # (step, seconds) where the rate is timed from

    def elapsed(self) -> float:
        """Seconds since the plan was made."""
        return self.clock() - self._start

    def proceed(self, step: int) -> bool:
        """Whether to run step ``step`` (0-based, called once per step in order): False once
        :attr:`total` steps are done or the time cap is exceeded. Plans :attr:`total` at the
        window's end."""
        if step >= self.total:
            return False
        now = self.elapsed()
        if now > self.time_cap_s:
            self.cap_hit = True
            return False
        first, last = self.window
        if step == first:
            self._mark = (step, now)
        elif self._mark is not None and (
            step == last or (step > last and (step - last) % self.recheck == 0)
        ):
            self._plan(step, now)
        return step < self.total

    def _plan(self, step: int, now: float) -> None:
        """Set :attr:`total` from the rate since the last mark: the steps that fit in the rest of
        ``share * time_cap_s``, never more than planned before."""
        mark_step, mark_time = self._mark
        self.seconds_per_step = (now - mark_time) / (step - mark_step)
        remaining = self.share * self.time_cap_s - now
        fit = (
            self.requested
            if self.seconds_per_step <= 0
            else int(max(0.0, remaining) / self.seconds_per_step)
        )
        total = min(self.total, step + fit)
        if step > self.window[1] and total < self.total:
            self.replans += 1
        self.total = total
        self._mark = (step, now)

    @property
    def shortened(self) -> bool:
        """Whether the plan cut the run below the requested iterations."""
        return self.total < self.requested

    def to_json(self) -> dict[str, Any]:
        return {
            "iterations_planned": self.total,
            "seconds_per_step": None
            if self.seconds_per_step is None
            else round(self.seconds_per_step, 5),
            "plan_shortened": self.shortened,
            "plan_rechecks_shortened": self.replans,
            "time_cap_hit": self.cap_hit,
        }


class StepRecord(NamedTuple):
    """One optimiser step of :func:`train_head`: its number (from 1), rate, loss and batch IoU."""

    step: int
    lr: float
    loss: float
    batch_iou: float


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice of the referent, per sample (the referent is a few percent of
    the pixels; Dice keeps the head from settling on all-background).

    logits float ``(B, 2, H, W)``; target long ``(B, H, W)`` 0/1, 255 ignored."""
    weight = torch.tensor([1.0, FOREGROUND_WEIGHT], device=logits.device)
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
    valid = (target != IGNORE_INDEX).float()
    prob = logits.softmax(1)[:, 1] * valid
    gt = (target == 1).float()
    inter = (prob * gt).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2)) + gt.sum((1, 2)) + 1)
    return ce + dice.mean()


def fused_logits(
    head: nn.Module,
    tuned: nn.Module,
    features: torch.Tensor,
    local: torch.Tensor,
    text: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """The training step's forward: ``tuned`` blocks and the head's sentence-independent part on
    cached frozen features ``(G, C, h, w)`` once per image, the language fusion once per sentence
    (``local (S,)``: each sentence's image row; ``text (S, D)``). Float logits ``(S, 2, *size)``."""
    visual = head.visual(tuned(features))
    logits = head.decode(visual[local], text)
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)


def head_logits(
    model: RefVOS, tuned: nn.Module, data: CachedSplit, images: torch.Tensor, text: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fused_logits` for every sentence about the images ``images`` (rows ``(G,)``);
    returns float logits ``(S, 2, H, W)`` at the image size (what ``model.segment`` computes from
    the images) and the sample indices ``(S,)`` they belong to."""
    samples, local = data.samples_of(images)
    logits = fused_logits(
        model.segmenter.classifier,
        tuned,
        data.features[images],
        local,
        text[data.text_index[samples]],
        tuple(data.masks.shape[-2:]),
    )
    return logits, samples


def head_step_workload(
    model: RefVOS,
    frozen: nn.Module,
    tuned: nn.Module,
    batch_size: int,
    image_size: int,
    sentences_per_image: int = 3,
) -> Workload:
    """One step of :func:`train_head` (forward + backward of copies of the ``tuned`` blocks and
    the head on a random batch of ``batch_size`` square images of ``image_size``): what
    ``precision="auto"`` times."""
    size, b, s = image_size, batch_size, batch_size * sentences_per_image

    def runner(precision: str):
        head = copy.deepcopy(model.segmenter.classifier).train()
        blocks = copy.deepcopy(tuned).eval()
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            features = frozen.eval()(torch.randn(b, 3, size, size, generator=gen))
        text = torch.randn(s, model.config.text_dim, generator=gen)
        local = torch.arange(b).repeat_interleave(sentences_per_image)
        target = torch.randint(0, 2, (s, size, size), generator=gen)

        def run():
            with autocast(torch.device("cpu"), precision):
                logits = fused_logits(head, blocks, features, local, text, (size, size))
            segmentation_loss(logits, target).backward()
            head.zero_grad(set_to_none=True)
            blocks.zero_grad(set_to_none=True)

        return run

    name = f"head-train:{module_signature(model.segmenter.classifier)}:{b}x{size}x{size}:{len(tuned)}blocks"
    return Workload(name, runner)


def _batch_iou(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Overall IoU of a batch's masks ``(B, H, W)`` over its non-ignored pixels."""
    pred, valid = foreground_mask(logits), target != IGNORE_INDEX
    gt = (target == 1) & valid
    union = ((pred & valid) | gt).sum().item()
    return (pred & gt).sum().item() / union if union else 0.0


def train_head(
    model: RefVOS,
    tuned: nn.Module,
    data: CachedSplit,
    text: torch.Tensor,
    config: HeadTrainConfig,
    precision: str,
    seed: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Train the ``tuned`` backbone blocks (BN statistics kept) and ``model.segmenter.classifier``
    on the cached features of ``data`` (sentence vectors ``text (U, D)``), on the CPU with
    ``precision`` autocast, with a tqdm progress bar; see the module docstring.

    ``clock`` times the run for its :class:`StepPlan` (a test passes a simulated one). Returns
    ``{"iterations" (run), "iterations_planned", "seconds_per_step", "plan_shortened",
    "plan_rechecks_shortened", "time_cap_hit", "train_images_seen", "train_samples_seen", "train_time_s", "curve":
    [StepRecord], "flush_denormals"}``. Denormal floats are flushed to zero during the run
    (:func:`refvos.runtime.flush_denormals`: on many CPUs they slow the late steps many times)."""
    with flush_denormals(torch.device("cpu")) as flushing:
        return {
            **_train_steps(model, tuned, data, text, config, precision, seed, clock),
            "flush_denormals": flushing,
        }


def _train_steps(
    model: RefVOS,
    tuned: nn.Module,
    data: CachedSplit,
    text: torch.Tensor,
    config: HeadTrainConfig,
    precision: str,
    seed: int,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """The loop of :func:`train_head`."""
    tqdm = require("tqdm", "progress bars").tqdm

    head = model.segmenter.classifier.train()
    tuned.eval()
    params = [p for p in (*tuned.parameters(), *head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = CosineSchedule(config.lr, warmup=config.warmup)
    gen = torch.Generator().manual_seed(seed)
    num_images = len(data.features)
    device = torch.device("cpu")
    order, pos = torch.randperm(num_images, generator=gen), 0
    curve: list[StepRecord] = []
    images_seen, samples_seen = 0, 0
    plan = StepPlan(config.iterations, config.time_cap_s, clock)
    bar = tqdm(total=plan.total, desc="training", unit="it", dynamic_ncols=True)
    step = 0
    while plan.proceed(step):
        if bar.total != plan.total:
            bar.total = plan.total
            bar.refresh()
        lr = schedule.rate(step, plan.total)
        for group in opt.param_groups:
            group["lr"] = lr
        if pos + config.batch_size > num_images:
            order, pos = torch.randperm(num_images, generator=gen), 0
        images = order[pos : pos + config.batch_size]
        pos += config.batch_size
        with autocast(device, precision):
            logits, samples = head_logits(model, tuned, data, images, text)
        target = data.masks[samples].long()
        loss = segmentation_loss(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        images_seen += len(images)
        samples_seen += len(samples)
        with torch.no_grad():
            batch_iou = _batch_iou(logits, target)
        step += 1
        record = StepRecord(step, lr, loss.item(), batch_iou)
        curve.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record.loss:.3f}", iou=f"{batch_iou:.2f}")
    bar.close()
    head.eval()
    return {
        "iterations": len(curve),
        **plan.to_json(),
        "train_images_seen": images_seen,
        "train_samples_seen": samples_seen,
        "train_time_s": round(plan.elapsed(), 2),
        "curve": curve,
    }


def _summary(m: RefSegMetrics) -> dict[str, Any]:
    r = m.compute()
    keys = ["overall_iou", "mean_iou"] + [f"precision@{t:.1f}" for t in m.thresholds]
    return {**{k: round(r[k], 4) for k in keys}, "num_samples": r["num_samples"]}


@torch.inference_mode()
def score_split(
    model: RefVOS,
    tuned: nn.Module,
    data: CachedSplit,
    text: torch.Tensor,
    precision: str,
    categories: dict[int, list[str]],
) -> tuple[dict[str, Any], np.ndarray]:
    """RefVOS's IoU metrics (:class:`~refvos.metrics.RefSegMetrics`, rounded to 4 digits) of the
    network on every sample of ``data``, overall and in ``"breakdown"`` per split
    (``split/NAME``) and per expression category (``category/NAME``; ``categories``: sent_id ->
    names). Runs the model's inference path on the cache: ``tuned`` blocks and the head's
    sentence-independent part (what ``model.encode_image`` ends with), then ``model.decode``
    (upsampling inside), 16 images at a time.

    Returns the metrics dict and the predicted masks bool ``(N, H, W)``."""
    model.eval()
    tuned.eval()
    device = torch.device("cpu")
    overall = RefSegMetrics()
    buckets: dict[str, RefSegMetrics] = defaultdict(RefSegMetrics)
    preds = np.zeros(tuple(data.masks.shape), dtype=bool)
    size = tuple(data.masks.shape[-2:])
    for i in range(0, len(data.features), 16):
        samples, local = data.samples_of(torch.arange(i, min(i + 16, len(data.features))))
        with autocast(device, precision):
            visual = model.segmenter.classifier.visual(tuned(data.features[i : i + 16]))
            logits = model.decode(visual[local], text[data.text_index[samples]], size)
        pred = foreground_mask(logits).numpy()
        gt = data.masks[samples].numpy()
        ignore = gt == IGNORE_INDEX
        overall.update(pred, gt, ignore=ignore)
        inter = (pred & (gt == 1)).sum(axis=(1, 2))
        union = ((pred & ~ignore) | (gt == 1)).sum(axis=(1, 2))
        for k, n in enumerate(samples.tolist()):
            meta = data.metas[n]
            keys = [f"split/{meta['split']}"] + [
                f"category/{c}" for c in categories.get(meta["sent_id"], [])
            ]
            for key in keys:
                buckets[key].update_from_counts([inter[k]], [union[k]])
            preds[n] = pred[k]
    out = _summary(overall)
    out["breakdown"] = {k: _summary(m) for k, m in sorted(buckets.items())}
    return out, preds
