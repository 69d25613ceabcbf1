"""ONNX export of a RefVOS network, with an onnxruntime parity check.

Two graphs are written:

- the **segmentation network** with the sentence vector as an input: ``images (B, 3, H, W)``
  (ImageNet-normalised float32) and ``text (B, D)`` -> ``logits (B, 2, H, W)``; the mask is
  ``logits[:, 1] > logits[:, 0]``. A video's expression is encoded once and its vector repeated
  over the batch.
- optionally the **text encoder**: ``input_ids`` / ``attention_mask (B, T)`` int64 -> ``text (B, D)``
  (last-layer [CLS] state), so a runtime without PyTorch can encode sentences too.

The legacy TorchScript exporter (``dynamo=False``) is used: it needs only ``onnx`` (the dynamo
exporter needs ``onnxscript``). ``dynamic=True`` makes batch, height and width symbolic.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..deps import require
from ..errors import InputError, RefVOSError
from ..io import atomic_write, check_writable

DEFAULT_OPSET = 17
MAX_SIDE = 4096  # of the example image (and of the parity check's image)


def supported_opsets() -> tuple[int, int]:
    """``(lowest, highest)`` ONNX opset this export writes: from the lowest that torch's constant
    folding takes to the highest both torch's TorchScript exporter and the installed ``onnx`` know."""
    _require_onnx()
    import onnx.defs

    try:
        from torch.onnx import _constants

        low, high = (
            _constants.ONNX_CONSTANT_FOLDING_MIN_OPSET,
            _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET,
        )
    except (ImportError, AttributeError):  # torch moved its constants: the values of torch 2.x
        low, high = 9, 20
    return low, min(high, onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> None:
    """``opset`` is in :func:`supported_opsets`; one-line InputError."""
    low, high = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise InputError(
            f"--opset {opset}: the installed torch and onnx export opsets {low}..{high}"
        )


def check_export_arguments(height: int, width: int, opset: int) -> None:
    """``height`` / ``width`` in 16..:data:`MAX_SIDE` and ``opset`` in :func:`supported_opsets`,
    checked before anything is allocated; one-line InputError."""
    if not (16 <= height <= MAX_SIDE and 16 <= width <= MAX_SIDE):
        raise InputError(f"--height/--width must be in 16..{MAX_SIDE}, got {width}x{height}")
    check_opset(opset)


class SegmentationGraph(nn.Module):
    """``(images (B,3,H,W), text (B,D)) -> logits (B,2,H,W)``: the segmenter without the
    batch-1 broadcast branch (the exported graph takes one sentence vector per image)."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.backbone = segmenter.backbone
        self.classifier = segmenter.classifier

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.backbone(images), text)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


class TextGraph(nn.Module):
    """``(input_ids (B,T), attention_mask (B,T)) -> text (B,D)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(input_ids, attention_mask)


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured."""

    segmenter_path: str
    text_encoder_path: str | None = None
    height: int = 480
    width: int = 480
    dynamic: bool = False
    opset: int = DEFAULT_OPSET
    export_seconds: float = 0.0
    parity: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _require_onnx() -> None:
    require("onnx", "ONNX export")


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict | None,
    opset: int,
) -> None:
    """``torch.onnx.export`` (legacy exporter) to a temporary file, then atomically into place."""

    def write(f) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation / tracer warnings of the legacy exporter
            torch.onnx.export(
                module,
                args,
                f,
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
            )

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, write)
    except torch.onnx.errors.OnnxExporterError as e:  # an operator without a form at this opset
        raise RefVOSError(
            f"ONNX export to {path} at opset {opset} failed: {str(e).splitlines()[0][:200]}"
        ) from e


def export_segmenter(
    model: nn.Module,
    path: str | os.PathLike,
    height: int = 480,
    width: int = 480,
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write the segmentation graph ``(images, text) -> logits`` of a :class:`RefVOS` to ``path``."""
    check_export_arguments(height, width, opset)
    path = Path(path)
    graph = SegmentationGraph(model.segmenter).eval().float()
    images = torch.zeros(1, 3, height, width)
    text = torch.zeros(1, model.config.text_dim)
    axes = None
    if dynamic:
        axes = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "text": {0: "batch"},
            "logits": {0: "batch", 2: "height", 3: "width"},
        }
    with torch.no_grad():
        _export(graph, (images, text), path, ["images", "text"], ["logits"], axes, opset)
    return path


def export_text_encoder(
    model: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET
) -> Path:
    """Write the text graph ``(input_ids, attention_mask) -> text`` (batch symbolic, T fixed)."""
    check_opset(opset)
    path = Path(path)
    graph = TextGraph(model).eval().float()
    t = model.config.max_tokens
    ids = torch.zeros(1, t, dtype=torch.long)
    ids[0, 0], ids[0, 1] = 101, 102
    mask = torch.zeros(1, t, dtype=torch.long)
    mask[0, :2] = 1
    axes = {"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}, "text": {0: "batch"}}
    with torch.no_grad():
        _export(graph, (ids, mask), path, ["input_ids", "attention_mask"], ["text"], axes, opset)
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, default torch's)."""
    ort = require("onnxruntime", "the ONNX parity check")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def segmenter_parity(
    model: nn.Module,
    path: str | os.PathLike,
    images: torch.Tensor,
    text: torch.Tensor,
    session=None,
) -> dict[str, Any]:
    """Compare onnxruntime's logits with PyTorch fp32 on ``images (B,3,H,W)`` / ``text (B,D)``.

    Returns ``max_abs_logit_diff``, ``max_abs_logit`` (scale), ``mask_pixel_agreement``
    (fraction of pixels whose argmax agrees) and ``mask_iou`` (foreground IoU; 1 when both empty).
    """
    session = session or onnx_session(path)
    graph = SegmentationGraph(model.segmenter).eval().float()
    with torch.no_grad():
        ref = graph(images.float().contiguous(), text.float()).numpy()
    got = session.run(
        ["logits"], {"images": images.float().contiguous().numpy(), "text": text.float().numpy()}
    )[0]
    return logits_agreement(ref, got)


def logits_agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Difference and mask agreement of two ``(B, 2, H, W)`` logit arrays."""
    ref_mask, got_mask = ref[:, 1] > ref[:, 0], got[:, 1] > got[:, 0]
    union = np.logical_or(ref_mask, got_mask).sum()
    inter = np.logical_and(ref_mask, got_mask).sum()
    return {
        "max_abs_logit_diff": float(np.abs(ref - got).max()),
        "max_abs_logit": float(np.abs(ref).max()),
        "mask_pixel_agreement": float((ref_mask == got_mask).mean()),
        "mask_iou": float(inter / union) if union else 1.0,
        "foreground_fraction": float(ref_mask.mean()),
    }


def text_parity(
    model: nn.Module, path: str | os.PathLike, expressions: list[str]
) -> dict[str, Any]:
    """Max abs difference of onnxruntime's sentence vectors against PyTorch's."""
    from ..tokenization import get_tokenizer

    ids, mask = get_tokenizer().encode(expressions, model.config.max_tokens)
    with torch.no_grad():
        ref = model.encode_text(ids, mask).float().numpy()
    got = onnx_session(path).run(
        ["text"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    )[0]
    return {
        "max_abs_text_diff": float(np.abs(ref - got).max()),
        "max_abs_text": float(np.abs(ref).max()),
    }


def export_onnx(
    model: nn.Module,
    out: str | os.PathLike,
    height: int = 480,
    width: int = 480,
    dynamic: bool = False,
    text_encoder_out: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    seed: int = 0,
) -> ExportResult:
    """Export ``model`` (a :class:`RefVOS`, moved to CPU fp32) and check it with onnxruntime.

    ``out``: the segmentation graph; ``text_encoder_out``: also write the text graph there. The
    parity check runs one random ``height x width`` image and a random sentence vector (and, with
    ``dynamic``, a batch of 2 at another size) and reports the largest logit difference and the
    mask agreement.
    """
    check_export_arguments(height, width, opset)
    check_writable([Path(out)] + ([Path(text_encoder_out)] if text_encoder_out else []))
    model = model.to("cpu").float().eval()
    start = time.perf_counter()
    seg_path = export_segmenter(model, out, height, width, dynamic, opset)
    text_path = export_text_encoder(model, text_encoder_out, opset) if text_encoder_out else None
    result = ExportResult(
        str(seg_path),
        str(text_path) if text_path else None,
        height,
        width,
        dynamic,
        opset,
        round(time.perf_counter() - start, 3),
    )
    if check:
        gen = torch.Generator().manual_seed(seed)
        session = onnx_session(seg_path)
        cases = [(1, height, width)]
        if dynamic:
            cases.append((2, max(16, height // 2 + 8), max(16, width // 2 - 8)))
        parity: dict[str, Any] = {}
        for b, h, w in cases:
            images = torch.randn(b, 3, h, w, generator=gen)
            text = torch.randn(b, model.config.text_dim, generator=gen)
            r = segmenter_parity(model, seg_path, images, text, session)
            for k, v in r.items():
                parity[k] = (
                    max(parity.get(k, v), v) if k.startswith("max") else min(parity.get(k, v), v)
                )
        if text_path is not None:
            parity.update(text_parity(model, text_path, ["the man on the left", "a red car"]))
        result.parity = parity
    return result
