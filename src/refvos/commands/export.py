"""``refvos export``: write a checkpoint's network as ONNX (checked with onnxruntime), or as a
safetensors folder (``--format safetensors``)."""

from __future__ import annotations

import argparse

HELP = "export a checkpoint's segmentation network (images, sentence vector -> logits) to ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="refvos or released .pth checkpoint")
    parser.add_argument("--format", choices=("onnx", "safetensors"), default="onnx",
                        help="onnx (default), or safetensors: --out is then a folder of config.json + "
                             "model.safetensors + README.md, for Predictor.from_pretrained / the Hugging Face Hub")
    parser.add_argument("--out", required=True, help="output .onnx file of the segmentation network (--format safetensors: a folder)")
    parser.add_argument("--height", type=int, default=480, help="example input height (default 480)")
    parser.add_argument("--width", type=int, default=480, help="example input width (default 480)")
    parser.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width")
    parser.add_argument("--text-encoder-out", default=None,
                        help="also export the text encoder (input_ids, attention_mask -> text) here")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="fail (status 1) when the max abs logit difference exceeds this (default 1e-3)")


def run(args: argparse.Namespace) -> int:
    import json

    from ..checkpoint import load_checkpoint
    from ..errors import InputError
    from ..export import export_onnx

    if args.height < 16 or args.width < 16:
        raise InputError(f"--height/--width must be at least 16, got {args.width}x{args.height}")
    model = load_checkpoint(args.checkpoint)
    if args.format == "safetensors":
        from ..hub.folder import save_pretrained

        print(f"wrote {save_pretrained(model, args.out)}")
        return 0
    result = export_onnx(model, args.out, args.height, args.width, dynamic=args.dynamic,
                         text_encoder_out=args.text_encoder_out, opset=args.opset, check=not args.no_check)
    print(f"wrote {result.segmenter_path}" + (f" and {result.text_encoder_path}" if result.text_encoder_path else ""))
    if result.parity:
        print(json.dumps(result.parity, indent=2))
        diff = result.parity["max_abs_logit_diff"]
        if diff > args.tolerance:
            print(f"parity check FAILED: max abs logit difference {diff:.3g} > {args.tolerance:g}")
            return 1
        print(f"parity check passed: max abs logit difference {diff:.3g}, "
              f"mask pixel agreement {result.parity['mask_pixel_agreement']:.6f}")
    return 0
