"""int8 against fp32 on a trained checkpoint: ``refvos quantize``'s model, its masks and its speed.

For any trained network (``refvos_r101`` trained by ``refvos train``, or the demo's
``refvos_lite``): the int8 encoder is written by :func:`refvos.export.quantize.quantize_encoder`
(accuracy-controlled NNCF quantisation, the head's ASPP and the decoder in float), calibrated on
synthetic clips of seeds 900-903 and measured on clips it never saw (seeds 1000-1003, the bench's
agreement clips), both at the checkpoint's input side. Then, alternated in one process, the
per-frame latency at ``--size`` (a per-size network: the size it was quantised for) of the int8 Predictor, the default Predictor (backend and
precision ``auto``) and the fp32 PyTorch Predictor (random frame, the checkpoint's weights).
Usage::

    python -m benchmarks.int8_agreement --checkpoint CKPT --int8-model OUT.xml --out bench_out/int8.json

An existing ``--int8-model`` of these weights is reused (its recorded agreement is re-measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine, workloads  # noqa: E402
from benchmarks.peers import (  # noqa: E402
    ACCURATE,
    CALIBRATION_SEEDS,
    clip_pairs,
    refvos_runner,
    time_alternated,
)

HELD_OUT_SEEDS = workloads.agreement_seeds(4)  # the bench's agreement clips
CLIP_FRAMES = 12
CLIP_SIDE = 64  # the clips' side for a network that records no input size


def run(
    checkpoint: str, int8_model: str, size: int, repeats: int, max_drop: float | None = 0.01
) -> dict[str, Any]:
    from refvos import Predictor, load_checkpoint
    from refvos.export.quantize import int8_agreement, mask_agreement, quantize_encoder
    from refvos.runtime import openvino_backend as ovb

    model = load_checkpoint(checkpoint).eval()
    fp32 = Predictor(model, device="cpu", precision="fp32", backend="torch", compile=False)
    side = model.config.input_size or CLIP_SIDE
    held_out = clip_pairs(HELD_OUT_SEEDS, side, CLIP_FRAMES)
    out: dict[str, Any] = {"checkpoint": checkpoint, "variant": model.config.variant, "side": side}
    start = time.perf_counter()
    if Path(int8_model).is_file():
        record = ovb.int8_encoder_info(int8_model)
        record["agreement"] = int8_agreement(model, int8_model, held_out)
        record["reused"] = True
    else:
        calibration = clip_pairs(CALIBRATION_SEEDS, side, CLIP_FRAMES)
        record = quantize_encoder(model, int8_model, calibration, held_out, max_drop=max_drop)
    out["quantize"] = {**record, "seconds": round(time.perf_counter() - start, 1)}
    out["int8_mask_iou_vs_fp32"] = record["agreement"]["mean_iou"]
    out["accurate"] = record["agreement"]["mean_iou"] >= ACCURATE
    # the same frames through PyTorch's bf16 path: how much any reduced precision moves this
    # network's masks (a weakly trained one, with masks of a few pixels, moves under either)
    bf16 = Predictor(model, device="cpu", precision="bf16", backend="torch", compile=False)
    reference = [fp32.predict(f, e) for f, e in held_out]
    out["bf16_mask_iou_vs_fp32"] = mask_agreement(
        reference, [bf16.predict(f, e) for f, e in held_out]
    )["mean_iou"]

    # a per-size network's int8 encoder (record["size"]) runs only at the size it was quantised for
    h, w = record.get("size") or (size, size)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
    frame = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    t = fp32.encode_expressions(["the object"]).numpy()
    predictors = {
        "refvos_int8": Predictor(
            model, device="cpu", max_size=None, compile=False, int8_model=int8_model
        ),
        "refvos_default": Predictor(model, device="cpu", max_size=None, compile=False),
        "refvos_fp32": Predictor(
            model, device="cpu", max_size=None, precision="fp32", backend="torch", compile=False
        ),
    }
    predictors["refvos_default"].predict(frame, "the object")  # auto measures before timing
    latency = time_alternated({k: refvos_runner(p) for k, p in predictors.items()}, x, t, repeats)
    out["latency"] = {"size": f"{w}x{h}", **latency}
    out["refvos_default_choice"] = predictors["refvos_default"].precision_choice.to_json()
    out["int8_speedup_vs_default"] = (
        latency["refvos_default"]["median_s"] / latency["refvos_int8"]["median_s"]
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a trained refvos checkpoint (.pth)")
    p.add_argument("--int8-model", required=True, help="the int8 model (.xml): written if missing")
    p.add_argument("--size", type=int, default=480, help="latency frame side (default 480)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--max-drop",
        type=float,
        default=0.01,
        help="as refvos quantize's: accuracy control's bound on the calibration frames' mask mean "
        "IoU drop (default 0.01); 0 or less: plain quantisation",
    )
    p.add_argument("--out", default="bench_out/int8.json")
    args = p.parse_args(argv)
    max_drop = args.max_drop if args.max_drop > 0 else None
    result = {
        "machine": machine.machine_info(),
        **run(args.checkpoint, args.int8_model, args.size, args.repeats, max_drop),
    }
    result["machine"]["load_average_end"] = machine.load_average()
    from refvos.io import atomic_write_json

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    a = result["quantize"]["agreement"]
    lat = result["latency"]
    print(
        f"{result['variant']} int8 vs fp32 on {a['masks']} held-out frames at {result['side']}: "
        f"mean IoU {a['mean_iou']:.4f} (least {a['min_iou']:.4f}; bf16: "
        f"{result['bf16_mask_iou_vs_fp32']:.4f}); per frame at {lat['size']}: "
        + ", ".join(
            f"{k} {lat[k]['median_s']:.3f}s"
            for k in ("refvos_int8", "refvos_default", "refvos_fp32")
        )
    )
    print(json.dumps({k: result[k] for k in ("int8_mask_iou_vs_fp32", "accurate")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
