"""A parsed request through the :class:`~refvos.predictor.Predictor` -> the JSON answer
(overlays and masks as base64 PNG / GIF). Uses only the predictor's public methods:
``predict_all`` for a picture, ``iter_video_all`` for a video (the backbone once per frame
batch, every expression decoded on it)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from .budget import measure_side, noise_png
from .decoding import decode_upload
from .limits import Limits
from .parsing import SegmentRequest


def png_b64(picture: Image.Image) -> str:
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def mask_picture(mask: np.ndarray) -> Image.Image:
    """Bool ``(H, W)`` -> 8-bit picture, 255 on the object."""
    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def render(predictor: Any, req: SegmentRequest, limits: Limits | None = None) -> dict:
    """``{"kind", "width", "height", "results"}``: per expression on a picture ``expression, area,
    box, score, overlay_png, mask_png``; on a video ``expression, overlay_gif, mask_pngs, frames``
    (``area, box, score`` per frame) and ``num_frames``. Frames stream through decoding, the
    network and the encoders one batch at a time: no list of frames, overlays or logits is kept
    (each expression's GIF is written frame by frame)."""
    from ..media.overlay_video import OverlayGif
    from ..media.visualize import overlay

    frames = req.frames.iter(limits or Limits(), len(req.expressions))
    doc: dict[str, Any] = {"kind": req.kind}
    if req.kind == "image":
        rgb = next(frames)
        doc["width"], doc["height"] = int(rgb.shape[1]), int(rgb.shape[0])
        doc["results"] = [
            {
                **r.to_json(),
                "box": list(r.box) if r.box is not None else None,
                "overlay_png": png_b64(overlay(rgb, r.mask)),
                "mask_png": png_b64(mask_picture(r.mask)),
            }
            for r in predictor.predict_all(rgb, req.expressions)
        ]
        return doc
    per_expression = [{"expression": e, "mask_pngs": [], "frames": []} for e in req.expressions]
    gifs = [io.BytesIO() for _ in req.expressions]
    total = len(req.frames.sizes) if req.frames.sizes is not None else None
    count = 0
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(OverlayGif(g, e, fps=6.0)) for g, e in zip(gifs, req.expressions)
        ]
        for rgb, predictions in predictor.iter_video_all(
            frames, req.expressions, total_frames=total
        ):
            if not count:
                doc["width"], doc["height"] = int(rgb.shape[1]), int(rgb.shape[0])
            count += 1
            for out, writer, r in zip(per_expression, writers, predictions):
                writer.add(rgb, r.mask)
                out["mask_pngs"].append(png_b64(mask_picture(r.mask)))
                out["frames"].append(
                    {
                        "area": r.area,
                        "box": list(r.box) if r.box is not None else None,
                        "score": round(r.score, 6),
                    }
                )
    doc["num_frames"] = count
    doc["results"] = [
        {
            "expression": out["expression"],
            "overlay_gif": base64.b64encode(g.getvalue()).decode("ascii"),
            "mask_pngs": out["mask_pngs"],
            "frames": out["frames"],
        }
        for out, g in zip(per_expression, gifs)
    ]
    return doc


def timing_run(predictor: Any, limits: Limits) -> Callable[[int], dict]:
    """``run(e)`` for :func:`refvos.serve.budget.measure_budget`: one upload of a noise PNG of the
    processed size (:func:`refvos.serve.budget.measure_side`) with ``e`` expressions, decoded and
    answered as a real picture request (the costliest path per pixel: every expression's overlay
    is a PNG)."""
    side = measure_side(limits.max_size)
    data = noise_png(side)
    limits = dataclasses.replace(limits, max_pixels=max(limits.max_pixels, side * side))

    def run(expressions: int) -> dict:
        frames = decode_upload(data, "budget.png", limits)
        req = SegmentRequest(
            "image", frames, [f"the object number {i}" for i in range(expressions)]
        )
        return render(predictor, req, limits)

    return run
