"""``refvos export-original --checkpoint CKPT --out OUT`` (or ``CKPT OUT``): write a refvos checkpoint in the authors' released layout.

The output holds ``model`` (segmentation network), ``bert_model`` (BertModel state dict) and
``args`` (an ``argparse.Namespace`` with ``model = deeplabv3_resnet101`` and the data set), plus
``optimizer`` / ``epoch`` / ``lr_scheduler`` when the input has them (``--weights-only`` drops
them), as RefVOS's own ``test.py`` loads it. Written atomically. Only ``refvos_r101`` networks
have a released layout.
"""

from __future__ import annotations

import argparse

HELP = "write a refvos checkpoint in the released RefVOS layout (model, bert_model, args)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        dest="checkpoint_flag",
        metavar="CKPT",
        help="refvos-format checkpoint (e.g. best.pth); also accepted as the first argument",
    )
    parser.add_argument(
        "--out", dest="out_flag", metavar="OUT", help="output .pth file; also the second argument"
    )
    parser.add_argument("paths", nargs="*", metavar="CKPT OUT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--weights-only",
        action="store_true",
        help="leave out the optimizer, epoch and schedule state",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..checkpoint import (
        is_released_format,
        read_checkpoint,
        to_released_format,
        write_checkpoint,
    )
    from ..errors import InputError
    from ..io import check_writable

    positional = list(args.paths)
    checkpoint = args.checkpoint_flag or (positional.pop(0) if positional else None)
    out = args.out_flag or (positional.pop(0) if positional else None)
    if positional or checkpoint is None or out is None:
        raise InputError("expected --checkpoint CKPT --out OUT (or CKPT OUT), each once")
    src, out = Path(checkpoint), Path(out)
    check_writable([out], [src])
    ckpt = read_checkpoint(src)
    if is_released_format(ckpt):
        raise InputError(f"{src} is already in the released layout")
    released = to_released_format(ckpt)
    if args.weights_only:
        released = {k: released[k] for k in ("model", "bert_model", "args")}
    write_checkpoint(out, released)
    print(
        f"{out}: released layout ({len(released['model'])} model tensors, "
        f"{len(released['bert_model'])} bert_model tensors)"
    )
    return 0
