"""``refvos predict``: segment what sentences refer to in a user's own image or video.

Outputs (all written atomically; nothing is written when an input is bad):

- image, one expression: ``--out`` the overlay PNG, ``--mask-out`` the binary mask PNG (0/255).
- image, N expressions: the same names with ``_0`` ... ``_{N-1}`` before the suffix, in the order
  the expressions were given (``--out res.png`` -> ``res_0.png``, ``res_1.png``).
- image, no ``--out``/``--mask-out``/``--json``: the overlay goes to ``<image stem>_refvos.png`` in
  the current folder.
- video (``--video`` folder of frames, GIF, or a video file when imageio can decode it): into
  ``--out-dir`` (default ``<video stem>_refvos``) one sub-folder per expression, in the order
  given, ``expr_0/`` ... ``expr_{N-1}/`` (``expr_0/`` alone for one expression), each with
  ``masks/<frame>.png`` (0/255, full size; named after the frame files of a folder, ``00000``
  ... for a video file) and ``overlay.gif`` (long side at most 480 pixels). The folder is written
  beside itself and swapped in whole when the run succeeds (a kill or an error leaves the previous
  one, never a mix); a folder holding anything but ``expr_<n>`` sub-folders is refused.
- expressions longer than the model's token limit are reported on stderr (the model reads the
  first tokens only).
  Frames run through ``Predictor.iter_video_all`` (each expression encoded once, frames batched)
  and the outputs are streamed: each mask PNG is written as its frame comes and the GIF is
  appended frame by frame, so memory stays flat in the video's length.
- ``--json``: one JSON document on stdout with each result's area (mask pixels), box
  (``[x0, y0, x1, y1]`` inclusive, or null) and score (mean foreground probability in the mask),
  per frame for a video, plus the paths written and ``runtime``: the precision chosen and why
  (``precision="auto"`` is measured, see :mod:`refvos.runtime`) and the compile report.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import sys
from pathlib import Path

from .checks import add_backend_argument, add_compile_argument, add_runtime_arguments
from .data_args import add_truncation_argument

HELP = "segment what an expression refers to in an image or a video (overlay, mask PNG, JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="model: a .pth (refvos format or the authors' release), a save_pretrained folder, "
        "a released model's name (refvos download --list) or a Hugging Face repo id",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="an image file (JPEG, PNG, ...)")
    src.add_argument(
        "--video", help="a folder of frames, a GIF, or a video file (mp4... needs imageio + ffmpeg)"
    )
    parser.add_argument(
        "--expression",
        "-e",
        action="append",
        required=True,
        help="the sentence describing the object; repeat for several objects",
    )
    parser.add_argument(
        "--out", help="overlay PNG for --image (suffixed _0, _1... with several expressions)"
    )
    parser.add_argument(
        "--mask-out", help="binary mask PNG for --image (0/255; suffixed like --out)"
    )
    parser.add_argument(
        "--out-dir", help="output folder for --video (default: <video stem>_refvos)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print areas, boxes and scores as one JSON document"
    )
    add_runtime_arguments(
        parser,
        "auto",
        "numeric precision (default auto: bf16 on GPUs; on CPUs the faster of fp32 and bf16, "
        "measured once and cached; env REFVOS_PRECISION overrides auto)",
    )
    add_compile_argument(parser, "once a video has run enough frames to pay back the compile time")
    add_backend_argument(parser)
    parser.add_argument(
        "--max-size",
        type=max_size_arg,
        default="model",
        help="cap on the long side of the processed picture in pixels, or 'native' "
        "(default: the size the checkpoint was trained at, native for the released ones)",
    )
    parser.add_argument(
        "--fps", type=float, default=6.0, help="frame rate of the overlaid GIF (default 6)"
    )
    add_truncation_argument(parser)


# -- helpers --------------------------------------------------------------------------------------
def suffixed(path: Path, index: int, count: int) -> Path:
    """``path`` itself for one expression, ``stem_{index}.suffix`` for several."""
    if count == 1:
        return path
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


def _check_expressions(expressions: list[str]) -> list[str]:
    from ..errors import InputError

    for i, e in enumerate(expressions):
        if not e.strip():
            which = "" if len(expressions) == 1 else f" #{i + 1}"
            raise InputError(
                f"--expression{which} is empty: give a sentence that describes the object"
            )
    return expressions


def _check_png_path(
    path: str, option: str, suffixes: tuple[str, ...] = (".png", ".jpg", ".jpeg")
) -> Path:
    from ..errors import InputError

    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise InputError(f"{option} {p}: expected a file name ending in {' or '.join(suffixes)}")
    if p.exists() and p.is_dir():
        raise InputError(f"{option} {p} is a folder; give a file name")
    return p


def max_size_arg(value: str) -> int | str | None:
    """``--max-size``: a number of pixels, ``native`` (the picture's own size) or ``model``."""
    if value in ("native", "model"):
        return None if value == "native" else value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels, 'native' or 'model', got {value!r}"
        ) from None


def _make_predictor(args: argparse.Namespace):
    from ..errors import InputError
    from ..predictor import Predictor

    if isinstance(args.max_size, int) and args.max_size < 16:
        raise InputError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    return Predictor.from_checkpoint(
        args.checkpoint,
        truncation=args.truncation,
        device=args.device,
        precision=args.precision,
        max_size=args.max_size,
        compile=getattr(args, "compile", "auto"),
        backend=getattr(args, "backend", "auto"),
        int8_model=getattr(args, "int8_model", None),
    )


def report_truncation(predictor, expressions: list[str]) -> list[str]:
    """A note on stderr for each expression longer than the model's token limit (it reads only
    the first tokens); returns the notes."""
    limit = predictor.model.config.max_tokens
    notes = []
    for e in expressions:
        n = predictor.tokenizer.count_tokens(e)
        if n > limit:
            notes.append(
                f"note: expression {e!r} is {n} tokens long ([CLS] and [SEP] included); "
                f"the model reads the first {limit}"
            )
    for note in notes:
        print(note, file=sys.stderr)
    return notes


def _mask_image(mask):
    import numpy as np
    from PIL import Image

    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


GIF_MAX_SIDE = 480  # overlaid GIF frames are scaled down to this long side (masks stay full size)


@contextlib.contextmanager
def _writing(what: str):
    """Turn a failed write (permissions, full disk, a file where a folder should be) into one line."""
    from ..errors import InputError

    try:
        yield
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        raise InputError(f"cannot write {what}{where}: {e.strerror or e}") from e


def _print_json(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


# -- image ----------------------------------------------------------------------------------------
def _run_image(args: argparse.Namespace, expressions: list[str]) -> int:
    from ..media.image import load_image
    from ..media.visualize import overlay, save_image

    n = len(expressions)
    out = _check_png_path(args.out, "--out") if args.out else None
    mask_out = _check_png_path(args.mask_out, "--mask-out", (".png",)) if args.mask_out else None
    if out is None and mask_out is None and not args.json:
        out = Path(f"{Path(args.image).stem}_refvos.png")

    outputs = [suffixed(o, i, n) for o in (out, mask_out) if o is not None for i in range(n)]
    from ..io import check_writable

    check_writable(outputs, [Path(args.image), Path(args.checkpoint)])
    rgb = load_image(args.image)  # before the (slow) model load: a bad image fails fast
    predictor = _make_predictor(args)
    report_truncation(predictor, expressions)
    results = predictor.predict_all(rgb, expressions)

    # everything computed: now write (each file atomically; if one fails, none is left)
    written, files = [], []
    try:
        with _writing("the output files"):
            for i, r in enumerate(results):
                entry = {"expression": r.expression, **r.to_json()}
                entry["box"] = list(r.box) if r.box is not None else None
                if out is not None:
                    files.append(
                        save_image(overlay(rgb, r.mask, r.expression), suffixed(out, i, n))
                    )
                    entry["overlay"] = str(files[-1])
                if mask_out is not None:
                    files.append(save_image(_mask_image(r.mask), suffixed(mask_out, i, n)))
                    entry["mask"] = str(files[-1])
                written.append(entry)
    except BaseException:
        for f in files:
            with contextlib.suppress(OSError):
                Path(f).unlink()
        raise
    if args.json:
        _print_json(
            {
                "image": str(args.image),
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "results": written,
                "runtime": predictor.runtime_report(),
            }
        )
    else:
        for e in written:
            paths = ", ".join(e[k] for k in ("overlay", "mask") if k in e)
            box = (
                "none"
                if e["box"] is None
                else "x{}-{} y{}-{}".format(e["box"][0], e["box"][2], e["box"][1], e["box"][3])
            )
            print(
                f"{e['expression']!r}: area {e['area']} px, box {box}, score {e['score']:.3f} -> {paths}"
            )
    return 0


# -- video ----------------------------------------------------------------------------------------
VIDEO_BATCH = 4  # frames per forward pass of the video path


def check_out_dir(out_dir: Path) -> None:
    """``--out-dir`` is replaced whole by a run: refuse one holding anything but ``expr_<n>``
    folders (another tool's files, or the user's)."""
    import re

    from ..errors import InputError

    if out_dir.is_dir():
        foreign = [
            p.name
            for p in out_dir.iterdir()
            if not (re.fullmatch(r"expr_\d+", p.name) and p.is_dir())
        ]
        if foreign:
            raise InputError(
                f"--out-dir {out_dir} holds files refvos predict did not write ({foreign[0]}"
                f"{' ...' if len(foreign) > 1 else ''}); the folder is replaced whole by a run: "
                "give a new or empty folder"
            )


def _run_video(args: argparse.Namespace, expressions: list[str]) -> int:
    from ..errors import InputError
    from ..io import staged_folder
    from ..media.image import load_image
    from ..media.overlay_video import OverlayGif
    from ..media.video import list_frames, read_video_frames
    from ..media.visualize import save_image

    if args.out or args.mask_out:
        raise InputError("--out and --mask-out are for --image; with --video give --out-dir")
    video = Path(args.video)
    out_dir = (
        Path(args.out_dir)
        if args.out_dir
        else Path(f"{video.name if video.is_dir() else video.stem}_refvos")
    )
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out-dir {out_dir} exists and is not a folder")
    if args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    if not video.exists():
        raise InputError(f"video {video} does not exist")

    check_out_dir(out_dir)
    frames = read_video_frames(video)
    total = len(list_frames(video)) if video.is_dir() else None
    first = next(frames, None)  # surfaces a missing/unsupported/empty video before the model load
    if first is None:
        raise InputError(f"video {video} has no frames")
    predictor = _make_predictor(args)
    report_truncation(predictor, expressions)
    n = len(expressions)
    subdirs = [Path(f"expr_{i}") for i in range(n)]  # one layout whatever the number of expressions
    names: collections.deque[str] = collections.deque()  # of frames read, not yet written
    size: list[tuple[int, int]] = []

    def decoded_frames():
        """The frames as RGB arrays (decoded in the predictor's read-ahead thread), each name
        queued before its frame goes out; sizes checked against the first frame."""
        seen: set[str] = set()
        for index, frame in enumerate(itertools.chain([first], frames)):
            name = Path(frame).stem if isinstance(frame, (str, os.PathLike)) else f"{index:05d}"
            if name in seen:  # e.g. 001.jpg and 001.png in one folder
                name = f"{index:05d}_{name}"
            seen.add(name)
            rgb = load_image(frame)
            if not size:
                size.append(rgb.shape[:2])
            elif rgb.shape[:2] != size[0]:
                raise InputError(
                    f"video {video}: frame {name} is {rgb.shape[1]}x{rgb.shape[0]} but the first frame is "
                    f"{size[0][1]}x{size[0][0]}; all frames must have the same size"
                )
            names.append(name)
            yield rgb

    # Stage everything in a hidden folder beside --out-dir and swap it in whole on success: a bad
    # frame half-way or a kill leaves the previous output as it was, never a mix of two runs
    # (staging folders of killed runs are removed by the next run, see refvos.io.staged_folder).
    per_frame: list[list[dict]] = [[] for _ in range(n)]
    with (
        _writing(f"--out-dir {out_dir}"),
        staged_folder(out_dir) as stage,
        contextlib.ExitStack() as gifs,
    ):
        writers = [
            gifs.enter_context(
                OverlayGif(stage / d / "overlay.gif", e, fps=args.fps, max_side=GIF_MAX_SIDE)
            )
            for d, e in zip(subdirs, expressions)
        ]
        for rgb, results in predictor.iter_video_all(
            decoded_frames(), expressions, batch_size=VIDEO_BATCH, total_frames=total
        ):
            name = names.popleft()
            for i, r in enumerate(results):
                save_image(_mask_image(r.mask), stage / subdirs[i] / "masks" / f"{name}.png")
                writers[i].add(rgb, r.mask)
                per_frame[i].append(
                    {
                        "frame": name,
                        "area": r.area,
                        "box": list(r.box) if r.box is not None else None,
                        "score": round(r.score, 6),
                    }
                )
            del rgb, results
        gifs.close()  # the GIFs complete before the swap

    results_doc = []
    for i, e in enumerate(expressions):
        d = out_dir / subdirs[i]
        results_doc.append(
            {
                "expression": e,
                "masks": str(d / "masks"),
                "overlay": str(d / "overlay.gif"),
                "frames": per_frame[i],
            }
        )
    if args.json:
        _print_json(
            {
                "video": str(video),
                "num_frames": len(per_frame[0]),
                "width": int(size[0][1]),
                "height": int(size[0][0]),
                "results": results_doc,
                "runtime": predictor.runtime_report(),
            }
        )
    else:
        for r in results_doc:
            areas = [f["area"] for f in r["frames"]]
            print(
                f"{r['expression']!r}: {len(areas)} frames, mean area {sum(areas) / len(areas):.0f} px "
                f"-> {r['overlay']}, {r['masks']}/"
            )
    return 0


def run(args: argparse.Namespace) -> int:
    expressions = _check_expressions(list(args.expression))
    if args.image is not None:
        return _run_image(args, expressions)
    return _run_video(args, expressions)
