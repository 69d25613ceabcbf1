"""A parsed request through the :class:`~refvos.predictor.Predictor` -> the JSON answer
(overlays and masks as base64 PNG / GIF). Uses only the predictor's public methods:
``predict_all`` for a picture, ``iter_video_all`` for a video (the backbone once per frame
batch, every expression decoded on it)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from .parsing import SegmentRequest


def png_b64(picture: Image.Image) -> str:
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def gif_b64(pictures: list[Image.Image], fps: float = 6.0) -> str:
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def mask_picture(mask: np.ndarray) -> Image.Image:
    """Bool ``(H, W)`` -> 8-bit picture, 255 on the object."""
    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def render(predictor: Any, req: SegmentRequest) -> dict:
    """``{"kind", "width", "height", "results"}``: per expression on a picture ``expression, area,
    box, score, overlay_png, mask_png``; on a video ``expression, overlay_gif, mask_pngs, frames``
    (``area, box, score`` per frame) and ``num_frames``."""
    from ..media.visualize import VideoFill, caption, overlay

    h, w = req.frames[0].shape[:2]
    doc: dict[str, Any] = {"kind": req.kind, "width": int(w), "height": int(h)}
    if req.kind == "image":
        rgb = req.frames[0]
        doc["results"] = [
            {**r.to_json(), "box": list(r.box) if r.box is not None else None,
             "overlay_png": png_b64(overlay(rgb, r.mask)), "mask_png": png_b64(mask_picture(r.mask))}
            for r in predictor.predict_all(rgb, req.expressions)
        ]
        return doc
    per_expression = [{"expression": e, "overlays": [], "mask_pngs": [], "frames": []} for e in req.expressions]
    fills = [VideoFill() for _ in req.expressions]  # one colour per expression through the video
    for rgb, predictions in predictor.iter_video_all(req.frames, req.expressions):
        for out, fill, r in zip(per_expression, fills, predictions):
            out["overlays"].append(caption(overlay(rgb, r.mask, color=fill(rgb, r.mask)), r.expression))
            out["mask_pngs"].append(png_b64(mask_picture(r.mask)))
            out["frames"].append({"area": r.area, "box": list(r.box) if r.box is not None else None,
                                  "score": round(r.score, 6)})
    results = [{"expression": out["expression"], "overlay_gif": gif_b64(out.pop("overlays")),
                "mask_pngs": out["mask_pngs"], "frames": out["frames"]} for out in per_expression]
    doc["num_frames"] = len(req.frames)
    doc["results"] = results
    return doc
