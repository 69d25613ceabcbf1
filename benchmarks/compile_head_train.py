"""Does ``torch.compile`` pay for the demo's head-training step? Eager against compiled.

The step is :func:`refvos.demo.head_trainer.fused_logits` + ``segmentation_loss`` + backward +
AdamW on the ``make demo`` shapes (``refvos.demo.PRESETS["default"]``: ``refvos_lite`` on Lite0
stage 2, 64-channel head, ASPP 3/6/9, no dropout, 6 cached 128-pixel images a step; 55-75
sentences a step as in the demo's data, 384-d sentence vectors), random weights. Each mode runs ``--steps`` steps with the same batches; the first step
(the compilation, for the compiled mode) is reported apart from the median of the rest; each
step's loss is recorded, so that the two modes can be seen to compute the same training.
``torch.compile(dynamic=True)``: the sentence count changes every step. Usage::

    python benchmarks/compile_head_train.py --out bench_out/compile_head_train.json [--precision bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from refvos.demo import PRESETS  # noqa: E402
from refvos.demo.head_trainer import fused_logits, segmentation_loss  # noqa: E402
from refvos.io import atomic_write_json  # noqa: E402
from refvos.modeling import build_model  # noqa: E402
from refvos.modeling.surgery import set_dropout, split_backbone  # noqa: E402
from refvos.runtime import autocast  # noqa: E402

RECIPE = PRESETS["default"]  # the network and batch of `make demo`
SENTENCES = (55, 75)  # per step, as the demo's (about 11 sentences per image)


def time_mode(
    compiled: bool, precision: str, steps: int, size: int, seed: int = 0
) -> dict[str, Any]:
    """First-step and median-step seconds of one mode, from a fresh network and the same batches."""
    torch.manual_seed(seed)
    model = build_model(
        "refvos_lite",
        backbone_stage=RECIPE.backbone_stage,
        head_channels=RECIPE.head_channels,
        atrous_rates=RECIPE.atrous_rates,
        backbone_weights=None,
        text_encoder=None,
    )
    set_dropout(model.segmenter.classifier, RECIPE.dropout)
    frozen, tuned = split_backbone(model, RECIPE.tuned_blocks)
    head = model.segmenter.classifier.train()
    tuned.eval()
    opt = torch.optim.AdamW([*head.parameters(), *tuned.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    images_per_step = RECIPE.training.batch_size
    with torch.no_grad():
        features = frozen.eval()(torch.randn(images_per_step, 3, size, size, generator=gen))
    low, high = SENTENCES

    def step(local, text, target):
        with autocast(torch.device("cpu"), precision):
            logits = fused_logits(head, tuned, features, local, text, (size, size))
        loss = segmentation_loss(logits, target)
        loss.backward()
        return loss

    run = torch.compile(step, dynamic=True) if compiled else step
    seconds, losses = [], []
    for i in range(steps):
        s = low + (i * 7) % (high - low + 1)
        local = torch.sort(torch.randint(0, images_per_step, (s,), generator=gen)).values
        text = torch.randn(s, model.config.text_dim, generator=gen)
        target = torch.randint(0, 2, (s, size, size), generator=gen)
        start = time.perf_counter()
        losses.append(run(local, text, target).detach())
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    rest = seconds[1:]
    return {
        "first_step_s": round(seconds[0], 4),
        "median_step_s": round(statistics.median(rest), 5),
        "steps": steps,
        "losses": [float(x) for x in losses],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument(
        "--steps", type=int, default=60, help="steps per mode (the first is reported apart)"
    )
    p.add_argument(
        "--size", type=int, default=RECIPE.image_size, help="image side (default: the demo's)"
    )
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error(f"--steps must be at least 2, got {args.steps}")
    load_start = list(os.getloadavg())
    result: dict[str, Any] = {
        mode: time_mode(mode == "compiled", args.precision, args.steps, args.size)
        for mode in ("eager", "compiled")
    }
    result["compiled_over_eager"] = round(
        result["compiled"]["median_step_s"] / result["eager"]["median_step_s"], 3
    )
    result.update(
        {
            "precision": args.precision,
            "size": args.size,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        }
    )
    atomic_write_json(args.out, result)
    for mode in ("eager", "compiled"):
        r = result[mode]
        print(
            f"{mode:9s} first step {r['first_step_s']:.2f} s, median step {r['median_step_s'] * 1e3:.1f} ms"
        )
    print(f"compiled / eager per step: {result['compiled_over_eager']:.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
