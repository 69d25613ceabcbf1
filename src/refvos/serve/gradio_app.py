"""A Gradio interface over :class:`~refvos.predictor.Predictor` (``pip install refvos[gradio]``):
the field's usual demo surface, deployable as a Hugging Face Space.

This module imports without Gradio; only :func:`build_interface` and :func:`main` need it.

    python -m refvos.serve.gradio_app --checkpoint model.pth          # local
    # a Space's app.py:  from refvos.serve.gradio_app import build_interface, load_predictor
    #                    build_interface(load_predictor("model.pth")).launch()
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..deps import require
from ..errors import InputError, MissingExtraError, RefVOSError

MAX_VIDEO_FRAMES = 96  # a Space is a shared machine: longer videos are refused
DISPLAY_SIDE = 640  # overlays are shown at most this long side (the model's size when smaller)
KEEP_OUTPUTS = 16  # overlaid GIFs kept in the demo's output folder (older ones are removed)


def load_predictor(checkpoint: str, device: str | None = None, max_size: int | None = 640):
    """The predictor a demo runs: the network of ``checkpoint`` (a file, a pretrained folder, a
    released model's name or a Hub id: :func:`refvos.hub.resolve.load_model`), long side capped
    at ``max_size``."""
    from ..hub.resolve import load_model
    from ..predictor import Predictor

    predictor = Predictor(
        load_model(checkpoint), device=device, max_size=max_size, _owns_model=True
    )
    predictor.calibrate()  # at start-up, not on the first request
    return predictor


def _expression(expression: str | None) -> str:
    from .budget import check_expression_length

    expression = (expression or "").strip()
    if not expression:
        raise InputError("type an expression that describes one object")
    return check_expression_length(expression)


def segment_image(
    predictor: Any, image: np.ndarray | None, expression: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """RGB ``(H, W, 3)`` and a sentence -> (overlay RGB ``(H, W, 3)``, mask uint8 ``(H, W)`` 0/255,
    a one-line summary). Raises :class:`InputError` for a missing image, an empty sentence or one
    longer than :data:`refvos.serve.budget.MAX_EXPRESSION_CHARS`."""
    from ..media.visualize import overlay

    if image is None:
        raise InputError("upload an image first")
    (result,) = predictor.predict_all(image, [_expression(expression)])
    picture = np.asarray(overlay(image, result.mask).convert("RGB"))
    x0, y0, x1, y1 = result.box or (0, 0, 0, 0)
    box = "none" if result.box is None else f"x{x0}-{x1} y{y0}-{y1}"
    summary = f"area {result.area} px, box {box}, score {result.score:.3f}"
    return picture, result.mask.astype(np.uint8) * 255, summary


def _header_sizes(video_path: str, source: str) -> list[tuple[int, int]] | None:
    """Frame sizes from the headers of a file Pillow reads (GIF, TIFF, WebP...), counted up to
    :data:`MAX_VIDEO_FRAMES` (:func:`refvos.media.video.frame_sizes`); None for other containers."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from ..media.video import PIL_ERRORS, frame_sizes

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(video_path)
    except (UnidentifiedImageError, Image.DecompressionBombError, *PIL_ERRORS):
        return None  # the frame reader gives the error, or reads it as a video container
    with img:
        return frame_sizes(img, source, MAX_VIDEO_FRAMES)


def segment_video(
    predictor: Any,
    video_path: str | None,
    expression: str,
    out_path: str,
    max_work: int | None = None,
) -> str:
    """A video file (GIF, or mp4 with imageio + PyAV) and a sentence -> an overlaid GIF at
    ``out_path``. The work (:mod:`refvos.serve.budget`, ``max_work`` pixels, default serve's) is
    checked from the frames' headers before decoding where the format allows it, else frame by
    frame; frames stream through the predictor to a GIF written frame by frame, each overlay
    drawn at the model's size (at most :data:`DISPLAY_SIDE`), never all frames at full size."""
    from ..media.overlay_video import OverlayGif
    from ..media.video import read_video_frames
    from .budget import DEFAULT_MAX_WORK, check_work

    if not video_path:
        raise InputError("upload a video first")
    expression = _expression(expression)
    budget = DEFAULT_MAX_WORK if max_work is None else max_work
    source = f"video {Path(video_path).name}"
    model_side = getattr(predictor, "max_size", None)
    sizes = _header_sizes(video_path, source)
    if sizes is not None:
        check_work(sizes, model_side, 1, budget, source)
    seen: list[tuple[int, int]] = []

    def frames():
        for frame in read_video_frames(video_path, max_frames=MAX_VIDEO_FRAMES):
            if sizes is None:  # a container sized only while decoding: charged frame by frame
                seen.append((frame.shape[1], frame.shape[0]))
                check_work(seen, model_side, 1, budget, source)
            yield frame

    side = min(DISPLAY_SIDE, model_side or DISPLAY_SIDE)
    out = Path(out_path)
    with OverlayGif(out, expression, fps=6.0, max_side=side) as gif:
        for rgb, mask, _ in predictor.iter_video(frames(), expression):
            gif.add(rgb, mask)
    return str(out)


def measure_demo_budget(predictor: Any, max_seconds: float, clock=None):
    """The demo's work budget for ``max_seconds`` a video: :func:`refvos.serve.budget.measure_budget`
    timing a noise PNG of the predictor's processed size decoded and segmented with one expression
    (the demo's only count), ``clock`` as there (default ``time.perf_counter``)."""
    import io

    from PIL import Image

    from .budget import measure_budget, measure_side, noise_png

    side = measure_side(getattr(predictor, "max_size", None))
    data = noise_png(side)

    def run(expressions: int) -> None:
        with Image.open(io.BytesIO(data)) as img:
            segment_image(predictor, np.asarray(img.convert("RGB")), "the object")

    return measure_budget(run, side, max_seconds, **({"clock": clock} if clock is not None else {}))


class OutputFolder:
    """One temporary folder for a running demo's overlaid GIFs, holding the newest ``keep``:
    each call gets a fresh name (Gradio serves the file after the call returns), older files
    are removed, and the folder itself when the process exits."""

    def __init__(self, keep: int = KEEP_OUTPUTS) -> None:
        import atexit
        import tempfile

        self.keep = keep
        self.path = Path(tempfile.mkdtemp(prefix="refvos-gradio-"))
        atexit.register(self.cleanup)

    def new_file(self, suffix: str = ".gif") -> Path:
        import uuid

        files = sorted(self.path.glob("*"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[: max(0, len(files) - self.keep + 1)]:
            old.unlink(missing_ok=True)
        return self.path / f"overlay-{uuid.uuid4().hex}{suffix}"

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


def build_interface(predictor: Any, max_work: int | None = None, max_seconds: float | None = None):
    """A ``gradio.Blocks`` app with an image tab and a video tab. A video's work is bounded by
    ``max_work`` pixels (:mod:`refvos.serve.budget`) or, when None, by ``max_seconds`` (default
    :data:`refvos.serve.budget.DEFAULT_MAX_SECONDS`) measured here (:func:`measure_demo_budget`, logged)."""
    import gradio as gr

    if max_work is None:
        import logging

        from .budget import DEFAULT_MAX_SECONDS

        measured = measure_demo_budget(
            predictor, DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds
        )
        max_work = measured.max_work
        logging.getLogger("refvos.gradio").info("%s", measured.describe())

    def on_image(image, expression):
        try:
            return segment_image(predictor, image, expression)
        except RefVOSError as e:
            raise gr.Error(str(e)) from None

    outputs = OutputFolder()

    def on_video(video, expression):
        try:
            return segment_video(
                predictor, video, expression, str(outputs.new_file()), max_work=max_work
            )
        except RefVOSError as e:
            raise gr.Error(str(e)) from None

    with gr.Blocks(title="refvos: referring expression segmentation") as demo:
        gr.Markdown(
            "# refvos\nDescribe one object in a sentence; see its mask (RefVOS, Bellver et al. 2020)."
        )
        with gr.Tab("Image"):
            image = gr.Image(type="numpy", label="image")
            expression = gr.Textbox(label="expression", placeholder="the man on the left")
            button = gr.Button("Segment")
            shown, mask, summary = (
                gr.Image(label="overlay"),
                gr.Image(label="mask"),
                gr.Textbox(label="result"),
            )
            button.click(on_image, [image, expression], [shown, mask, summary])
        with gr.Tab("Video"):
            video = gr.Video(label="video")
            v_expression = gr.Textbox(label="expression")
            v_button = gr.Button("Segment")
            v_out = gr.Image(label="overlay (GIF)", type="filepath")
            v_button.click(on_video, [video, v_expression], [v_out])
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m refvos.serve.gradio_app", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--device", default=None)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="time budget of a video, measured at start as in refvos serve (default 30)",
    )
    budget.add_argument(
        "--max-work",
        type=int,
        default=None,
        help="work budget of a video in pixels (nothing measured)",
    )
    args = parser.parse_args(argv)
    try:
        require("gradio", "the Gradio demo")
    except MissingExtraError as e:
        print(f"refvos gradio: {e}", file=sys.stderr)
        return 2
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.max_work is not None and args.max_work < 1:
            raise InputError(f"--max-work must be at least 1, got {args.max_work}")
        predictor = load_predictor(args.checkpoint, args.device)
        demo = build_interface(predictor, args.max_work, args.max_seconds)
    except RefVOSError as e:
        print(f"refvos gradio: error: {e}", file=sys.stderr)
        return 2
    demo.launch(server_name=args.host, server_port=args.port, max_file_size="20mb")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
