"""``refvos export``: write a checkpoint's network as ONNX (checked with onnxruntime), or as a
safetensors folder (``--format safetensors``)."""

from __future__ import annotations

import argparse

HELP = "export a checkpoint's segmentation network (images, sentence vector -> logits) to ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..export import DEFAULT_OPSET, MAX_SIDE

    parser.add_argument("--checkpoint", required=True, help="refvos or released .pth checkpoint")
    parser.add_argument(
        "--format",
        choices=("onnx", "safetensors"),
        default="onnx",
        help="onnx (default), or safetensors: --out is then a folder of config.json + "
        "model.safetensors + README.md, for Predictor.from_pretrained / the Hugging Face Hub",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output .onnx file of the segmentation network (--format safetensors: a folder)",
    )
    parser.add_argument(
        "--height",
        type=int,
        default=480,
        help=f"example input height, 16..{MAX_SIDE} (default 480)",
    )
    parser.add_argument(
        "--width", type=int, default=480, help=f"example input width, 16..{MAX_SIDE} (default 480)"
    )
    parser.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width")
    parser.add_argument(
        "--text-encoder-out",
        default=None,
        help="also export the text encoder (input_ids, attention_mask -> text) here",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset (default {DEFAULT_OPSET}; the range the installed torch and onnx export "
        "is checked)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="fail (status 1) when the max abs logit difference exceeds this (default 1e-3)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..checkpoint import load_checkpoint
    from ..export import check_export_arguments, export_onnx
    from ..io import check_output_folder, check_writable

    if args.format == "safetensors":  # a folder (config.json + model.safetensors + card)
        from ..hub.folder import save_pretrained

        check_output_folder(args.out, "--out", [Path(args.checkpoint)])
        print(f"wrote {save_pretrained(load_checkpoint(args.checkpoint), args.out)}")
        return 0
    check_export_arguments(args.height, args.width, args.opset)  # before the checkpoint is read
    outputs = [Path(args.out)] + ([Path(args.text_encoder_out)] if args.text_encoder_out else [])
    check_writable(outputs, [Path(args.checkpoint)])
    model = load_checkpoint(args.checkpoint)
    result = export_onnx(
        model,
        args.out,
        args.height,
        args.width,
        dynamic=args.dynamic,
        text_encoder_out=args.text_encoder_out,
        opset=args.opset,
        check=not args.no_check,
    )
    print(
        f"wrote {result.segmenter_path}"
        + (f" and {result.text_encoder_path}" if result.text_encoder_path else "")
    )
    if result.parity:
        print(json.dumps(result.parity, indent=2))
        diff = result.parity["max_abs_logit_diff"]
        if diff > args.tolerance:
            print(f"parity check FAILED: max abs logit difference {diff:.3g} > {args.tolerance:g}")
            return 1
        print(
            f"parity check passed: max abs logit difference {diff:.3g}, "
            f"mask pixel agreement {result.parity['mask_pixel_agreement']:.6f}"
        )
    return 0
