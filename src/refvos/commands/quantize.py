"""``refvos quantize``: an int8 encoder for a checkpoint, calibrated on frames, with its measured
agreement with fp32 recorded beside it (OpenVINO + NNCF: ``pip install "refvos[openvino]"``).

Every frame of ``--calibration`` (a folder of images, a GIF or a video) is paired with every
``--expression``; the last ``--held-out`` fraction of the frames is kept out of calibration and
measures the agreement: the int8 masks against the fp32 PyTorch Predictor's (mean IoU), written
to ``OUT.json`` with the recipe. ``refvos predict|serve --int8-model OUT.xml`` runs it.
"""

from __future__ import annotations

import argparse

HELP = (
    "write an int8 encoder of a checkpoint (OpenVINO, NNCF) with its measured agreement with fp32"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="refvos or released .pth checkpoint")
    parser.add_argument(
        "--calibration",
        required=True,
        help="frames to calibrate on and to measure with: a folder of images, a GIF or a video",
    )
    parser.add_argument(
        "--expression",
        action="append",
        required=True,
        help="an expression about the frames (repeat the flag for several)",
    )
    parser.add_argument(
        "--out", required=True, help="the int8 model: an OpenVINO .xml path (.bin, .json beside it)"
    )
    parser.add_argument(
        "--held-out",
        type=float,
        default=0.25,
        help="fraction of the frames (the last ones) kept for measuring the agreement (default 0.25)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        default=None,
        help="long side the frames are scaled to (default: the model's input size)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.01,
        help="accuracy control: layers return to float until the calibration frames' mask mean "
        "IoU vs fp32 is at least 1 - this (default 0.01; each pass over the layers takes minutes "
        "on a ResNet-101); 0 or less: plain quantisation (seconds), held-out agreement recorded "
        "all the same",
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..checkpoint import load_checkpoint
    from ..errors import InputError
    from ..export.quantize import quantize_encoder
    from ..media.image import load_image
    from ..media.video import read_video_frames
    from ..runtime.openvino_backend import require

    require()
    if not 0 < args.held_out < 1:
        raise InputError(f"--held-out must be a fraction in (0, 1), got {args.held_out}")
    if args.max_size is not None and args.max_size < 16:
        raise InputError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    if not Path(args.out).name.endswith(".xml"):
        raise InputError(f"--out {args.out}: expected an OpenVINO .xml path")
    expressions = [e.strip() for e in args.expression if e.strip()]
    if not expressions:
        raise InputError("--expression: give at least one non-empty expression")
    frames = [load_image(f) for f in read_video_frames(args.calibration)]
    held = max(1, round(len(frames) * args.held_out))
    if len(frames) - held < 1:
        raise InputError(
            f"--calibration {args.calibration}: {len(frames)} frame(s); need at least 2 "
            "(calibration and held out)"
        )
    model = load_checkpoint(args.checkpoint)
    pairs = [
        [(f, e) for f in part for e in expressions] for part in (frames[:-held], frames[-held:])
    ]
    record = quantize_encoder(
        model,
        args.out,
        pairs[0],
        pairs[1],
        max_size=args.max_size or "model",
        max_drop=args.max_drop if args.max_drop > 0 else None,
    )
    print(json.dumps(record["agreement"], indent=2))
    print(
        f"wrote {args.out} (+ .bin, .json): int8 masks vs fp32 on {record['agreement']['masks']} held-out "
        f"frame/expression pairs: mean IoU {record['agreement']['mean_iou']:.4f}"
    )
    return 0
