"""The CUDA paths in one short run: training step, inference (eager, compiled), torchrun.

    .venv/bin/python benchmarks/gpu.py --device cuda --out bench_out/gpu.json   # a GPU machine
    .venv/bin/python benchmarks/gpu.py --device cpu --small --out /tmp/gpu.json # tiny, for CI

Sections (each one's failure is recorded in ``errors`` and the run goes on, exit status 1):

- ``train``: one optimizer step of refvos's Trainer on ``--model`` (``refvos_r101``, random weights) at batch
  ``--batch`` (7) and ``--size`` (480) in bf16 AMP and in fp32, against the original's step
  (benchmarks/original.py), alternated: images/s and peak memory (CUDA: max allocated);
- ``inference``: per-frame latency of ``Predictor`` (batch 1, ``--size``) eager and compiled
  (``compile=True``, its compile time apart), at the precision ``auto`` chooses;
- ``torchrun``: ``torchrun --nproc_per_node 1 -m refvos train`` for one short epoch on synthetic
  RefCOCO (NCCL on CUDA, gloo on the CPU): exit status, wall time, steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402
import torch  # noqa: E402
from original import OriginalTrainStep  # noqa: E402
from project_train import project_step  # noqa: E402

SMALL_TEXT_CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}


def log(msg: str) -> None:
    print(f"[gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build(name: str, small: bool):
    from refvos.commands.checks import complete_text_config
    from refvos.modeling import build_model

    torch.manual_seed(0)
    kw = {"text_config": complete_text_config(dict(SMALL_TEXT_CONFIG))} if small else {}
    return build_model(name, backbone_weights=None, text_encoder=None, **kw).eval()


def train_batch(batch: int, size: int, max_tokens: int) -> dict[str, torch.Tensor]:
    from refvos.data.scenes import make_video_clip
    from refvos.media.image import to_tensor
    from refvos.tokenization import get_tokenizer

    frames, masks, expression = make_video_clip(batch, size, seed=1)
    ids, att = get_tokenizer().encode([expression] * batch, max_tokens)
    return {
        "image": torch.stack([to_tensor(f) for f in frames]),
        "mask": torch.stack([torch.from_numpy(m) for m in masks]).long(),
        "input_ids": ids,
        "attention_mask": att,
    }


def bench_train(model, args, device) -> dict[str, Any]:
    batch = train_batch(args.batch, args.size, model.config.max_tokens)
    steps = {"original_fp32": OriginalTrainStep(copy.deepcopy(model), device)}
    original = steps["original_fp32"]
    steps["original_fp32"] = lambda: original(batch)
    for precision in ("bf16", "fp32"):
        steps[f"refvos_{precision}"] = project_step(copy.deepcopy(model), batch, device, precision)
    out: dict[str, Any] = {"batch": args.batch, "size": args.size}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for name, step in steps.items():  # warm-up; its peak is the variant's peak memory
        machine.reset_peak_memory(device)
        step()
        machine.sync(device)
        out[name] = {"peak_memory": machine.peak_memory_mb(device)}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            machine.sync(device)
            times[name].append(time.perf_counter() - start)
    for name, t in times.items():
        out[name].update(step_s=machine.summary(t), images_per_s=args.batch / statistics.median(t))
    base = out["original_fp32"]["images_per_s"]
    for name in times:
        out[name]["speedup_vs_original"] = out[name]["images_per_s"] / base
    for step in steps.values():
        if hasattr(step, "close"):
            step.close()
    return out


def bench_inference(model, args, device) -> dict[str, Any]:
    from refvos import Predictor

    frame = (torch.rand(args.size, args.size, 3) * 255).to(torch.uint8).numpy()
    out: dict[str, Any] = {"size": args.size}
    for name, compile in (("eager", False), ("compiled", True)):
        predictor = Predictor(model, device=device, max_size=None, compile=compile, backend="torch")
        start = time.perf_counter()
        predictor.predict(frame, "the red ball")  # warm-up (compiles when on)
        machine.sync(device)
        first_s = time.perf_counter() - start
        machine.reset_peak_memory(device)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.predict(frame, "the red ball")
            machine.sync(device)
            times.append(time.perf_counter() - start)
        out[name] = {
            "latency": machine.summary(times),
            "first_call_s": first_s,
            "precision": predictor.precision_choice.to_json(),
            "compile": predictor.compile_report(),
            "peak_memory": machine.peak_memory_mb(device),
        }
        del predictor
    return out


def bench_torchrun(args, device, workdir: Path) -> dict[str, Any]:
    from refvos.data.synthetic import make_refcoco

    images = 20  # the synthetic RefCOCO's split cycle: 16 train, 2 val, testA, testB
    root = make_refcoco(workdir / "refcoco", num_images=images, image_size=args.size, seed=0)
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "1",
        "-m",
        "refvos",
        "train",
        "--dataset",
        "refcoco",
        "--data-root",
        str(root),
        "--model",
        args.model,
        "--backbone-weights",
        "none",
        "--text-encoder",
        "none",
        "--base-size",
        str(args.size),
        "--crop-size",
        str(args.size),
        "-b",
        str(args.batch),
        "--epochs",
        "1",
        "--workers",
        "0",
        "--device",
        device.type,
        "--output-dir",
        str(workdir / "run"),
        "--model_id",
        "torchrun",
        "--print-freq",
        "1",
    ]
    if args.small:
        argv += ["--text-config", json.dumps(SMALL_TEXT_CONFIG)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.torchrun_timeout)
    out = {
        "returncode": proc.returncode,
        "wall_s": round(time.perf_counter() - start, 1),
        "backend": "nccl" if device.type == "cuda" else "gloo",
        "images": images,
        "tail": (proc.stdout + proc.stderr)[-1500:],
    }
    done = [line for line in proc.stdout.splitlines() if line.startswith("done:")]
    out["done"] = done[-1] if done else None
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        raise RuntimeError(
            f"torchrun exited {proc.returncode}: {errors[0] if errors else out['tail'][-400:]}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="bench_out/gpu.json")
    parser.add_argument(
        "--small",
        action="store_true",
        help="refvos_lite with a 2-layer text encoder at small sizes (CI on the CPU)",
    )
    parser.add_argument(
        "--model",
        choices=["refvos_r101", "refvos_lite"],
        default=None,
        help="the network (default refvos_r101; refvos_lite with --small)",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="training batch (default 7; 2 with --small)"
    )
    parser.add_argument(
        "--size", type=int, default=None, help="image side (default 480; 64 with --small)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs (default 5; 1 with --small)"
    )
    parser.add_argument("--torchrun-timeout", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "inference", "torchrun"])
    args = parser.parse_args(argv)
    args.model = args.model or ("refvos_lite" if args.small else "refvos_r101")
    args.batch = args.batch or (2 if args.small else 7)
    args.size = args.size or (64 if args.small else 480)
    args.repeats = args.repeats or (1 if args.small else 5)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu.py: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    from refvos.io import atomic_write_json

    result: dict[str, Any] = {
        "machine": machine.machine_info(),
        "device": str(device),
        "errors": {},
        "config": {k: getattr(args, k) for k in ("model", "batch", "size", "repeats", "small")},
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    started = time.perf_counter()
    model = build(args.model, args.small)
    with tempfile.TemporaryDirectory(prefix="refvos-gpu-") as tmp:
        for name, fn in (
            ("train", lambda: bench_train(model, args, device)),
            ("inference", lambda: bench_inference(model, args, device)),
            ("torchrun", lambda: bench_torchrun(args, device, Path(tmp))),
        ):
            if name in args.skip:
                continue
            log(f"{name} ...")
            try:
                result[name] = fn()
            except Exception as e:  # noqa: BLE001 - recorded; the run goes on and exits non-zero
                traceback.print_exc()
                result["errors"][name] = f"{type(e).__name__}: {e}"
    result["duration_s"] = round(time.perf_counter() - started, 1)
    atomic_write_json(Path(args.out), result)
    if "train" in result:
        t = result["train"]
        print(
            f"train step batch {t['batch']} {t['size']}x{t['size']}: "
            + ", ".join(
                f"{k} {t[k]['images_per_s']:.2f} img/s ({t[k]['speedup_vs_original']:.2f}x, peak "
                f"{t[k]['peak_memory']['mb']:.0f} MB)"
                for k in ("original_fp32", "refvos_fp32", "refvos_bf16")
            )
        )
    if "inference" in result:
        i = result["inference"]
        print(
            f"inference {i['size']}x{i['size']}: eager {i['eager']['latency']['median_s']:.4f} s, compiled "
            f"{i['compiled']['latency']['median_s']:.4f} s (first call {i['compiled']['first_call_s']:.1f} s)"
        )
    if "torchrun" in result:
        print(
            f"torchrun --nproc_per_node 1: exit {result['torchrun']['returncode']} in {result['torchrun']['wall_s']} s"
        )
    print(f"wrote {args.out} in {result['duration_s']:.0f} s")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
