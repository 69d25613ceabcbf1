"""The demo's head trainer: the run planned to its time budget (simulated clocks: no timing),
its cosine schedule ending at 0 at the planned step, the precision workload on copies."""

from __future__ import annotations

import itertools

import pytest
import torch

from refvos.demo.feature_cache import CachedSplit
from refvos.demo.head_trainer import HeadTrainConfig, StepPlan, head_step_workload, train_head
from refvos.engine.schedules import CosineSchedule
from refvos.media.image import to_tensor
from refvos.modeling import build_model
from refvos.modeling.surgery import split_backbone
from tests.helpers import TINY_TEXT_CONFIG

SIZE = 32


def ticking(seconds_per_read: float):
    """A simulated clock that advances ``seconds_per_read`` each time it is read (the plan reads it
    once per step)."""
    reads = itertools.count()
    return lambda: next(reads) * seconds_per_read


def changing(switch: int, later: float):
    """A simulated clock: 1 s a read up to read ``switch``, then ``later`` s a read."""
    reads = itertools.count()

    def clock() -> float:
        n = next(reads)
        return n if n <= switch else switch + later * (n - switch)

    return clock


def run(plan: StepPlan) -> int:
    """Drive ``plan`` as the trainer does; returns the steps it let run."""
    step = 0
    while plan.proceed(step):
        step += 1
    return step


def test_slow_machine_plan_shortens_the_run_to_the_budget():
    plan = StepPlan(1000, time_cap_s=100.0, clock=ticking(1.0), window=(10, 40), share=0.95)
    # steps 10..40 take 30 s; before step 40, 41 s have passed: 95 - 41 = 54 more steps fit
    assert run(plan) == plan.total == 94
    assert plan.seconds_per_step == 1.0 and plan.shortened and not plan.cap_hit
    assert plan.to_json() == {
        "iterations_planned": 94,
        "seconds_per_step": 1.0,
        "plan_shortened": True,
        "plan_rechecks_shortened": 0,
        "time_cap_hit": False,
    }


def test_fast_machine_plan_keeps_the_iterations():
    plan = StepPlan(1000, time_cap_s=100.0, clock=ticking(0.01), window=(10, 40))
    assert run(plan) == plan.total == 1000
    assert plan.seconds_per_step == pytest.approx(0.01) and not plan.shortened and not plan.cap_hit


def test_time_cap_stays_a_safety_net():
    """A machine that slows down after the timed steps (1 s a step until the plan, as above, then
    3 s), before any check: the cap stops the run and says so."""
    plan = StepPlan(1000, time_cap_s=100.0, clock=changing(41, 3.0), window=(10, 40))
    assert run(plan) == 60 and plan.total == 94 and plan.cap_hit  # 41 + 3 * 20 > 100


def test_machine_that_slows_down_is_replanned_before_the_cap():
    """1 s a step, then 2 s from the 200th clock read: the checks every 100 steps shorten the plan
    so that the run ends by plan, under the cap (worked by hand: the clock reads n at step n - 1)."""
    plan = StepPlan(
        10_000,
        time_cap_s=1000.0,
        clock=changing(200, 2.0),
        window=(10, 40),
        share=0.95,
        recheck=100,
    )
    # step 40: 41 s, 1 s/step -> 40 + 909 = 949; step 140: unchanged; step 240: 282 s, 1.41 s/step
    # -> 240 + 473 = 713; step 340: 482 s, 2 s/step -> 340 + 234 = 574; step 440: 682 s -> 574
    assert run(plan) == plan.total == 574
    assert plan.seconds_per_step == 2.0 and plan.replans == 2 and not plan.cap_hit
    # without the checks the first plan (949 steps) runs into the cap: step 600 reads 1002 s
    once = StepPlan(
        10_000, time_cap_s=1000.0, clock=changing(200, 2.0), window=(10, 40), recheck=10**9
    )
    assert run(once) == 600 and once.total == 949 and once.cap_hit


def test_checks_never_lengthen_the_plan():
    plan = StepPlan(
        10_000, time_cap_s=1000.0, clock=changing(100, 0.1), window=(10, 40), recheck=50
    )
    assert run(plan) == plan.total == 40 + 909 and plan.replans == 0


def test_run_shorter_than_the_window_is_not_planned():
    short = StepPlan(5, time_cap_s=100.0, clock=ticking(1.0))
    assert run(short) == 5 and short.seconds_per_step is None and not short.shortened
    with pytest.raises(ValueError, match="window"):
        StepPlan(5, 100.0, window=(4, 4))


def tiny_setup(seed: int = 0):
    """A stage-2 refvos_lite with a narrow head, the frozen part's features of 6 random pictures
    cached, 2 sentences per picture (4 distinct vectors) and square referents."""
    torch.manual_seed(seed)
    model = build_model(
        "refvos_lite",
        backbone_stage=2,
        head_channels=8,
        atrous_rates=(1, 2, 3),
        backbone_weights=None,
        text_encoder=None,
        text_config=TINY_TEXT_CONFIG,
    )
    for p in model.parameters():
        p.requires_grad_(False)
    frozen, tuned = split_backbone(model, 1)
    for p in (*tuned.parameters(), *model.segmenter.classifier.parameters()):
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (6, SIZE, SIZE, 3), dtype=torch.uint8, generator=gen).numpy()
    with torch.no_grad():
        features = frozen.eval()(torch.stack([to_tensor(im) for im in images]))
    masks = torch.zeros(12, SIZE, SIZE, dtype=torch.uint8)
    masks[:, 8:20, 8:20] = 1
    masks[:, 0] = 255
    data = CachedSplit(
        features,
        torch.arange(6).repeat_interleave(2),
        torch.arange(12) % 4,
        masks,
        images,
        [f"sentence {i % 4}" for i in range(12)],
        [{"split": "train", "sent_id": i} for i in range(12)],
    )
    text = torch.randn(4, model.config.text_dim, generator=gen)
    return model, frozen, tuned, data, text


def config(iterations: int) -> HeadTrainConfig:
    return HeadTrainConfig(
        iterations=iterations, batch_size=2, lr=1e-3, weight_decay=1e-4, warmup=5, time_cap_s=100.0
    )


def test_slow_machine_trains_the_planned_steps_with_the_schedule_ending_at_zero():
    model, _, tuned, data, text = tiny_setup()
    cfg = config(1000)
    log = train_head(model, tuned, data, text, cfg, "fp32", seed=0, clock=ticking(1.0))
    assert log["iterations"] == log["iterations_planned"] == 94 and len(log["curve"]) == 94
    assert log["plan_shortened"] and not log["time_cap_hit"] and log["seconds_per_step"] == 1.0
    assert log["train_images_seen"] == 94 * cfg.batch_size
    schedule = CosineSchedule(cfg.lr, warmup=cfg.warmup)
    lrs = [r.lr for r in log["curve"]]
    # until the plan the 1000-step schedule, from it a 94-step one, which is 0 after the last step
    assert lrs[:40] == [schedule.rate(i, 1000) for i in range(40)]
    assert lrs[40:] == [schedule.rate(i, 94) for i in range(40, 94)]
    assert schedule.rate(94, 94) == 0.0 and lrs[-1] < 1e-3 * cfg.lr
    assert all(a >= b for a, b in zip(lrs[cfg.warmup - 1 :], lrs[cfg.warmup :]))
    assert [r.step for r in log["curve"]] == list(range(1, 95))


def test_fast_machine_trains_the_recipes_iterations():
    model, _, tuned, data, text = tiny_setup()
    before = {k: v.clone() for k, v in model.segmenter.classifier.state_dict().items()}
    cfg = config(45)
    log = train_head(model, tuned, data, text, cfg, "fp32", seed=0, clock=ticking(0.001))
    assert log["iterations"] == log["iterations_planned"] == 45
    assert not log["plan_shortened"] and not log["time_cap_hit"]
    assert log["seconds_per_step"] == pytest.approx(0.001)
    schedule = CosineSchedule(cfg.lr, warmup=cfg.warmup)
    assert [r.lr for r in log["curve"]] == [schedule.rate(i, 45) for i in range(45)]
    after = model.segmenter.classifier.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained the head


def test_precision_workload_times_one_step_on_copies():
    model, frozen, tuned, _, _ = tiny_setup()
    workload = head_step_workload(model, frozen, tuned, batch_size=2, image_size=SIZE)
    assert workload.name.startswith("head-train:") and f"2x{SIZE}x{SIZE}:1blocks" in workload.name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for precision in ("fp32", "bf16"):
        workload.runner(precision)()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
