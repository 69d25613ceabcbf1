"""``refvos serve``: a web page where a user uploads an image or a short video, types a sentence
and sees the mask; plus a JSON API (``POST /api/segment``, ``GET /healthz``). See
:mod:`refvos.serve.app` for the endpoints and limits."""

from __future__ import annotations

import argparse

from .checks import add_backend_argument, add_runtime_arguments
from .data_args import add_truncation_argument

HELP = "serve a web page and JSON API that segment what a sentence refers to in an uploaded image or video"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serve.budget import DEFAULT_MAX_SECONDS, MAX_WORK_CAP
    from ..serve.limits import Limits

    d = Limits()
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="model: a .pth (refvos format or the authors' release), a save_pretrained folder, "
        "a released model's name (refvos download --list) or a Hugging Face repo id",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help=f"model workers running at once (default {d.workers})",
    )
    parser.add_argument(
        "--queue",
        type=int,
        default=d.queue,
        help=f"requests waiting for a worker before others get 503 busy (default {d.queue})",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=d.max_bytes / 2**20,
        help=f"largest request body in MiB; larger get 413 (default {d.max_bytes / 2**20:g})",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=d.max_pixels,
        help=f"largest uploaded picture in pixels (default {d.max_pixels:,})",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        default=None,
        help="pictures are scaled down to this long side in pixels (default: the size the "
        f"checkpoint was trained at, else {d.max_size})",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=d.max_frames,
        help=f"most frames of a video (default {d.max_frames})",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="time budget per request in seconds, turned into pixels of work at start by timing "
        "the model on a synthetic frame of the --max-size on this machine (logged, and in "
        f"/api/info; at most {MAX_WORK_CAP:,} pixels of work, a bound on memory); a request "
        "asking for more work is refused with 413 from its headers, before decoding "
        f"(default {DEFAULT_MAX_SECONDS:g})",
    )
    budget.add_argument(
        "--max-work",
        type=int,
        default=None,
        help="work budget per request in pixels instead of --max-seconds (nothing measured): "
        "frames x (pixels + expressions x pixels after the --max-size downscale), e.g. "
        f"{d.max_work:,} is about 28 frames of 1024x1024 with one expression",
    )
    parser.add_argument(
        "--warmup",
        action="append",
        default=[],
        type=size_arg,
        metavar="HxW",
        help="torch.compile the network at start for pictures processed at this size (repeatable; "
        "a picture's size after --max-size). Never compiled during a request: other sizes "
        "run eagerly. Default: none (compiling a size takes seconds to minutes)",
    )
    add_runtime_arguments(parser, "auto")
    add_backend_argument(parser)
    add_truncation_argument(parser)
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name the browser may use to reach the server besides localhost / 127.0.0.1 / ::1 "
        "and --host (repeatable); other Host headers are refused (DNS rebinding guard)",
    )


def size_arg(value: str) -> tuple[int, int]:
    """``--warmup HxW`` -> ``(height, width)``."""
    h, sep, w = value.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and 16 <= int(h) <= 8192 and 16 <= int(w) <= 8192):
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH in pixels (16 to 8192), got {value!r}"
        )
    return int(h), int(w)


def run(args: argparse.Namespace) -> int:
    import logging
    import math

    from ..checkpoint import load_checkpoint
    from ..errors import InputError
    from ..serve import Limits, make_server

    for name in ("workers", "max_pixels", "max_frames", "max_work"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.queue < 0:
        raise InputError("--queue must be at least 0")
    if args.max_size is not None and args.max_size < 16:
        raise InputError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    if not math.isfinite(args.max_upload_mb) or not 0 < args.max_upload_mb <= 4096:
        raise InputError(
            f"--max-upload-mb must be a number of MiB in (0, 4096], got {args.max_upload_mb}"
        )
    if args.max_work is None and not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise InputError(
            f"--max-seconds must be a number of seconds more than 0, got {args.max_seconds}"
        )
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {args.port}")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model = load_checkpoint(
        args.checkpoint, truncation=args.truncation
    )  # the Predictor follows model.config
    max_size = args.max_size or model.config.input_size or Limits().max_size
    limits = Limits(
        workers=args.workers,
        queue=args.queue,
        max_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_size=max_size,
        max_frames=args.max_frames,
    )
    if args.max_work is not None:
        limits.max_work = args.max_work
    limits.max_buffered_bytes = max(limits.max_buffered_bytes, limits.max_bytes)
    server = make_server(
        model,
        args.host,
        args.port,
        limits,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        int8_model=args.int8_model,
        allowed_hosts=set(args.allowed_host),
        warmup=args.warmup,
        max_seconds=args.max_seconds if args.max_work is None else None,
    )
    print(f"refvos serve: open {server.url}/ in a browser (Ctrl-C to stop)", flush=True)
    server.serve_forever()  # uvicorn stops on Ctrl-C / SIGTERM after finishing open requests
    print("refvos serve: stopped", flush=True)
    return 0
