"""The optimiser's update of a training step: PyTorch's per-tensor loop against its fused kernel.

``refvos train`` builds its optimiser with :func:`refvos.engine.param_groups.build_optimizer`,
which takes PyTorch's fused SGD / AdamW update where the device has one; the original's step
(torchvision's references) runs the per-tensor loop. On ``refvos_r101``'s trainable parameters
(the refvos recipe's groups: the segmenter and BERT's first layers; random weights and random
gradients, the same in both), each variant's ``step()`` is timed alternately, and the parameters
after the same steps are compared (the largest absolute difference: the two compute one update).
Usage::

    python -m benchmarks.optimizer_step --out bench_out/optimizer_step.json [--quick]

``--quick``: the real ResNet-101 with a 2-layer 64-wide BERT (as ``benchmarks.run --quick``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine  # noqa: E402
from benchmarks.run import QUICK_TEXT_CONFIG  # noqa: E402

OPTIMIZERS = ("sgd", "adamw")


def loop_optimizer(name: str, groups: list[dict], config) -> torch.optim.Optimizer:
    """The optimiser as the original builds it: PyTorch's per-tensor loop (``foreach=False``)."""
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=0.01, weight_decay=config.weight_decay, foreach=False)
    return torch.optim.SGD(
        groups,
        lr=0.01,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        foreach=False,
    )


def run(name: str, model: torch.nn.Module, steps: int, out_dir: str) -> dict[str, Any]:
    from refvos.engine.param_groups import build_optimizer, build_param_groups
    from refvos.engine.train_config import TrainConfig

    config = TrainConfig(output_dir=out_dir, optimizer=name)
    models = {"loop": model, "refvos": copy.deepcopy(model)}
    optimizers = {
        "loop": loop_optimizer(name, build_param_groups(models["loop"], "original"), config),
        "refvos": build_optimizer(config, build_param_groups(models["refvos"], "original"), 0.01),
    }
    params = {k: [p for p in m.parameters() if p.requires_grad] for k, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {k: [] for k in models}
    for step in range(steps + 1):  # the first step (state allocation) untimed
        for p, q in zip(params["loop"], params["refvos"]):
            p.grad = torch.randn(p.shape, generator=generator) * 1e-3
            q.grad = p.grad.clone()
        for k, opt in optimizers.items():
            start = time.perf_counter()
            opt.step()
            if step:
                times[k].append(time.perf_counter() - start)
    diff = max((p - q).abs().max().item() for p, q in zip(params["loop"], params["refvos"]))
    return {
        "parameters_m": sum(p.numel() for p in params["refvos"]) / 1e6,
        "fused": all(g.get("fused") for g in optimizers["refvos"].param_groups),
        "loop_s": machine.summary(times["loop"]),
        "refvos_s": machine.summary(times["refvos"]),
        "refvos_over_loop": statistics.median(times["refvos"]) / statistics.median(times["loop"]),
        "max_abs_param_diff": diff,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="a 2-layer 64-wide BERT")
    p.add_argument("--out", default="bench_out/optimizer_step.json")
    args = p.parse_args(argv)
    from refvos.io import atomic_write_json
    from refvos.modeling import build_model

    torch.manual_seed(0)
    kw = {"text_config": QUICK_TEXT_CONFIG} if args.quick else {}
    model = build_model("refvos_r101", backbone_weights=None, text_encoder=None, **kw)
    result: dict[str, Any] = {"machine": machine.machine_info(), "steps": args.steps}
    for name in OPTIMIZERS:
        result[name] = run(name, copy.deepcopy(model), args.steps, str(Path(args.out).parent))
        r = result[name]
        print(
            f"{name} over {r['parameters_m']:.1f}M parameters: per-tensor loop "
            f"{r['loop_s']['median_s'] * 1000:.0f} ms, refvos (fused {r['fused']}) "
            f"{r['refvos_s']['median_s'] * 1000:.0f} ms a step ({r['refvos_over_loop']:.2f}x); "
            f"largest parameter difference {r['max_abs_param_diff']:.2e}"
        )
    result["machine"]["load_average_end"] = machine.load_average()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
