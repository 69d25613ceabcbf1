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
from typing import Any

import numpy as np

from ..deps import require
from ..errors import InputError, MissingExtraError, RefVOSError

MAX_VIDEO_FRAMES = 96  # a Space is a shared machine: longer videos are refused


def load_predictor(checkpoint: str, device: str | None = None, max_size: int | None = 640):
    """The predictor a demo runs: the network of ``checkpoint`` (a file, a pretrained folder, a
    released model's name or a Hub id: :func:`refvos.hub.resolve.load_model`), long side capped
    at ``max_size``."""
    from ..hub.resolve import load_model
    from ..predictor import Predictor

    predictor = Predictor(load_model(checkpoint), device=device, max_size=max_size, _owns_model=True)
    predictor.calibrate()  # at start-up, not on the first request
    return predictor


def segment_image(predictor: Any, image: np.ndarray | None, expression: str) -> tuple[np.ndarray, np.ndarray, str]:
    """RGB ``(H, W, 3)`` and a sentence -> (overlay RGB ``(H, W, 3)``, mask uint8 ``(H, W)`` 0/255,
    a one-line summary). Raises :class:`InputError` for a missing image or empty sentence."""
    from ..media.visualize import overlay

    if image is None:
        raise InputError("upload an image first")
    if not (expression or "").strip():
        raise InputError("type an expression that describes one object")
    (result,) = predictor.predict_all(image, [expression.strip()])
    picture = np.asarray(overlay(image, result.mask).convert("RGB"))
    x0, y0, x1, y1 = result.box or (0, 0, 0, 0)
    box = "none" if result.box is None else f"x{x0}-{x1} y{y0}-{y1}"
    summary = f"area {result.area} px, box {box}, score {result.score:.3f}"
    return picture, result.mask.astype(np.uint8) * 255, summary


def segment_video(predictor: Any, video_path: str | None, expression: str, out_path: str) -> str:
    """A video file (GIF, or mp4 with imageio + PyAV) and a sentence -> an overlaid GIF at ``out_path``."""
    from ..media.video import read_video_frames
    from ..media.visualize import VideoFill, caption, overlay, save_gif

    if not video_path:
        raise InputError("upload a video first")
    if not (expression or "").strip():
        raise InputError("type an expression that describes one object")
    frames = []
    for frame in read_video_frames(video_path):
        if len(frames) >= MAX_VIDEO_FRAMES:
            raise InputError(f"the video has more than {MAX_VIDEO_FRAMES} frames; trim it first")
        frames.append(frame)
    fill = VideoFill()  # one colour through the video
    pictures = [caption(overlay(rgb, mask, color=fill(rgb, mask)), expression.strip())
                for rgb, mask, _ in predictor.iter_video(frames, expression.strip())]
    return str(save_gif(pictures, out_path))


def build_interface(predictor: Any):
    """A ``gradio.Blocks`` app with an image tab and a video tab."""
    import tempfile
    from pathlib import Path

    import gradio as gr

    def on_image(image, expression):
        try:
            return segment_image(predictor, image, expression)
        except RefVOSError as e:
            raise gr.Error(str(e)) from None

    def on_video(video, expression):
        try:
            out = Path(tempfile.mkdtemp(prefix="refvos-gradio-")) / "overlay.gif"
            return segment_video(predictor, video, expression, str(out))
        except RefVOSError as e:
            raise gr.Error(str(e)) from None

    with gr.Blocks(title="refvos: referring expression segmentation") as demo:
        gr.Markdown("# refvos\nDescribe one object in a sentence; see its mask (RefVOS, Bellver et al. 2020).")
        with gr.Tab("Image"):
            image = gr.Image(type="numpy", label="image")
            expression = gr.Textbox(label="expression", placeholder="the man on the left")
            button = gr.Button("Segment")
            shown, mask, summary = gr.Image(label="overlay"), gr.Image(label="mask"), gr.Textbox(label="result")
            button.click(on_image, [image, expression], [shown, mask, summary])
        with gr.Tab("Video"):
            video = gr.Video(label="video")
            v_expression = gr.Textbox(label="expression")
            v_button = gr.Button("Segment")
            v_out = gr.Image(label="overlay (GIF)", type="filepath")
            v_button.click(on_video, [video, v_expression], [v_out])
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refvos.serve.gradio_app", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        require("gradio", "the Gradio demo")
    except MissingExtraError as e:
        print(f"refvos gradio: {e}", file=sys.stderr)
        return 2
    try:
        predictor = load_predictor(args.checkpoint, args.device)
    except RefVOSError as e:
        print(f"refvos gradio: error: {e}", file=sys.stderr)
        return 2
    build_interface(predictor).launch(server_name=args.host, server_port=args.port, max_file_size="20mb")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
