"""`refvos predict --video` against `Predictor.iter_video` on the same frames, and the CLI's peak
memory at two video lengths.

The CLI runs as a subprocess (its own start-up, reading JPEGs, writing mask PNGs and the overlaid
GIF) on a short and a long clip; its per-frame cost is the difference of the two wall times over
the difference of their frame counts, so start-up and model loading cancel. ``iter_video`` is
timed the same way in this process, on the same checkpoint, frames and precision. Peak RSS of
each CLI run comes from ``os.wait4`` (that child alone). Usage::

    python benchmarks/video_cli.py --out bench_out/video_cli.json [--checkpoint demo_out/model.pth]

Without ``--checkpoint`` the network is ``refvos_lite`` with random weights and a small random
text encoder (the CLI's fixed costs weigh most against a small network, so this is the strict
case). Both paths run at ``--precision`` (default fp32) so that only the paths differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import workloads  # noqa: E402
from refvos.io import atomic_write_json  # noqa: E402

EXPRESSION = "the red ball moving to the right"
SMALL_TEXT_CONFIG = {"hidden_size": 64, "num_hidden_layers": 2}


def random_checkpoint(path: Path) -> Path:
    """A ``refvos_lite`` checkpoint with random weights (no download)."""
    from refvos.checkpoint import save_checkpoint
    from refvos.commands.checks import complete_text_config
    from refvos.modeling import build_model

    torch.manual_seed(0)
    model = build_model(
        "refvos_lite",
        backbone_weights=None,
        text_encoder=None,
        text_config=complete_text_config(SMALL_TEXT_CONFIG),
    )
    save_checkpoint(path, model.eval())
    return path


def run_cli(checkpoint: Path, frames: Path, out_dir: Path, precision: str) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one `refvos predict --video` process."""
    cmd = [
        sys.executable,
        "-m",
        "refvos",
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--video",
        str(frames),
        "-e",
        EXPRESSION,
        "--out-dir",
        str(out_dir),
        "--precision",
        precision,
        "--compile",
        "off",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def time_iter_video(checkpoint: Path, paths: list[Path], precision: str) -> float:
    """Seconds for ``Predictor.iter_video`` over ``paths`` (frames read from disk, masks taken)."""
    from refvos import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, precision=precision, compile=False)
    for _ in predictor.iter_video(paths[:4], EXPRESSION):  # warm-up: first-call allocations
        pass
    start = time.perf_counter()
    for _, mask, _ in predictor.iter_video(paths, EXPRESSION):
        mask.sum()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_out/video_cli.json")
    parser.add_argument(
        "--checkpoint", default=None, help="a model.pth (default: a random refvos_lite)"
    )
    parser.add_argument("--frames", type=int, nargs=2, default=(40, 160), metavar=("SHORT", "LONG"))
    parser.add_argument("--size", type=int, nargs=2, default=(240, 427), metavar=("H", "W"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = parser.parse_args(argv)
    short, long = args.frames
    if not 1 <= short < long:
        parser.error(f"--frames: expected 1 <= SHORT < LONG, got {short} {long}")
    with tempfile.TemporaryDirectory(prefix="refvos-video-cli-") as tmp:
        work = Path(tmp)
        checkpoint = (
            Path(args.checkpoint) if args.checkpoint else random_checkpoint(work / "model.pth")
        )
        frames, _ = workloads.make_clip(long, *args.size)
        clips = {n: workloads.write_frames(frames[:n], work / f"clip{n}") for n in (short, long)}
        cli = {
            n: run_cli(checkpoint, work / f"clip{n}", work / f"out{n}", args.precision)
            for n in (short, long)
        }
        library = {n: time_iter_video(checkpoint, clips[n], args.precision) for n in (short, long)}
    cli_per_frame = (cli[long]["wall_s"] - cli[short]["wall_s"]) / (long - short)
    lib_per_frame = (library[long] - library[short]) / (long - short)
    result: dict[str, Any] = {
        "command": " ".join(
            ["python", "benchmarks/video_cli.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "checkpoint": args.checkpoint or "random refvos_lite",
        "size": list(args.size),
        "precision": args.precision,
        "cli": {str(n): v for n, v in cli.items()},
        "iter_video_s": {str(n): round(v, 3) for n, v in library.items()},
        "cli_s_per_frame": round(cli_per_frame, 6),
        "iter_video_s_per_frame": round(lib_per_frame, 6),
        # None when the clips are too short for the difference to rise above noise
        "cli_over_iter_video": round(cli_per_frame / lib_per_frame, 3)
        if lib_per_frame > 0
        else None,
        "peak_rss_growth_mb_per_100_frames": round(
            100 * (cli[long]["peak_rss_mb"] - cli[short]["peak_rss_mb"]) / (long - short), 1
        ),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
