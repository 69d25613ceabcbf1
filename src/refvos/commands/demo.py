"""``refvos demo``: the offline demo (synthetic data, CPU training, test metrics, a video)."""

from __future__ import annotations

import argparse

HELP = (
    "generate synthetic RefCOCO data, train refvos_lite on the CPU, evaluate on the held-out "
    "test splits, segment a synthetic video; write metrics, pictures and the checkpoint"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..demo import PRESETS

    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="'default': the full demo (about 8 minutes on 2 cores); 'quick': a smaller one "
        "(about 2 minutes); 'tiny': seconds, for tests",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the data and of training (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..demo import run_demo
    from ..io import check_output_folder
    from ..runtime import flush_denormals

    check_output_folder(args.out, "--out")
    # for the whole run, from before PyTorch starts its worker threads: they take the flag from
    # the thread that creates them (the trainer's own flushing reaches only its calling thread)
    with flush_denormals(torch.device("cpu")):
        m = run_demo(args.out, preset=args.preset, seed=args.seed)
    print(
        f"test ({' + '.join(m['test_splits'])}, {m['num_samples']} expressions): "
        f"overall IoU {m['overall_iou']:.3f}, mean IoU {m['mean_iou']:.3f}, "
        f"precision@0.5 {m['precision@0.5']:.3f}, precision@0.9 {m['precision@0.9']:.3f}"
    )
    print(f"video ({m['video']['expression']!r}): mean J {m['video']['mean_j']:.3f}")
    plan = (
        f" (planned to {m['iterations_planned']} of {m['recipe']['training']['iterations']} to fit the "
        f"{m['recipe']['training']['time_cap_s']:g} s budget at {m['seconds_per_step']:.3f} s a step)"
        if m["plan_shortened"]
        else ""
    )
    cap = " (training stopped by the time cap)" if m["time_cap_hit"] else ""
    print(
        f"trained {m['iterations']} iterations{plan}: {m['train_images_seen']} images, "
        f"{m['train_samples_seen']} (image, expression) samples{cap}; "
        f"wall time {m['wall_time_s']:.0f} s"
    )
    print(f"wrote {args.out}/: metrics.json, overlays/, training_curve.png, video.gif, model.pth")
    return 0
