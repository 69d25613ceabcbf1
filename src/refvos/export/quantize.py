"""Opt-in int8 inference of the segmentation network through ONNX Runtime's static quantization.

For CPUs where fp32 is the fastest float (bf16 slower than fp32): :func:`quantize_segmenter`
turns an exported segmentation graph (``refvos.export.export_segmenter``) into a QDQ int8 graph
that ONNX Runtime runs with VNNI int8 kernels on x86. The recipe:

1. ONNX Runtime's pre-processing (``quant_pre_process``: shape inference and graph optimisation,
   which folds each BatchNorm into its convolution, so the folded weights are what is quantised
   per channel);
2. the backbone's convolutions in int8 (weights per channel, uint8 activations with min-max
   ranges calibrated on a few real frames); the head (``classifier``: ASPP, the multiplicative
   fusion with the sentence vector and the last convolutions) stays float (``float_head``), since
   its low-contrast logits decide the mask's boundary.

On the network ``make demo`` trains, masks against the fp32 Predictor (mean IoU, 48 frames; see
docs/BENCHMARKS.md): plain min-max quantisation of every layer 0.67, with pre-processing 0.90,
with pre-processing and the float head 0.98. ``make bench`` reports ``int8_mask_iou_vs_fp32``.
Not used by default.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import RefVOSError

HEAD_PREFIX = "/classifier/"  # node names of RefVOSHead in an exported segmentation graph


def quantize_segmenter(onnx_path: str | os.PathLike, out_path: str | os.PathLike,
                       calibration: Iterable[tuple[np.ndarray, np.ndarray]], float_head: bool = True) -> Path:
    """Write the int8 (QDQ) version of the fp32 segmentation graph ``onnx_path`` to ``out_path``.

    ``calibration``: ``(images float32 (1, 3, H, W) normalised, text float32 (1, D))`` pairs at
    the graph's input size (a few frames and their sentence vectors). ``float_head``: leave the
    head's nodes (``/classifier/...``) in float (see the module docstring)."""
    onnx = require("onnx", "int8 quantisation")
    require("onnxruntime", "int8 quantisation")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = [{"images": np.ascontiguousarray(x, np.float32), "text": np.ascontiguousarray(t, np.float32)}
             for x, t in calibration]
    if not feeds:
        raise RefVOSError("int8 quantisation needs at least one calibration frame")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="refvos-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        head = [n.name for n in onnx.load(str(prepared)).graph.node if n.name.startswith(HEAD_PREFIX)]
        quantize_static(str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=head if float_head else [])
    return out_path
