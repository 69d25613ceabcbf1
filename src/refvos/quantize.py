"""Opt-in int8 inference of the segmentation network through ONNX Runtime's static quantization.

For CPUs where fp32 is the fastest float (bf16 slower than fp32): :func:`quantize_segmenter`
turns an exported segmentation graph (``refvos.export.export_segmenter``) into a QDQ int8 graph
(weights int8 per channel, activations uint8, ranges calibrated on a few real frames) that ONNX
Runtime runs with VNNI int8 kernels on x86. Masks differ from fp32; ``make bench`` reports
``int8_mask_iou_vs_fp32`` on the network ``make demo`` trains. Not used by default.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import RefVOSError


def quantize_segmenter(onnx_path: str | os.PathLike, out_path: str | os.PathLike,
                       calibration: Iterable[tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write the int8 (QDQ) version of the fp32 segmentation graph ``onnx_path`` to ``out_path``.

    ``calibration``: ``(images float32 (1, 3, H, W) normalised, text float32 (1, D))`` pairs at
    the graph's input size (a few frames and their sentence vectors)."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as e:
        raise RefVOSError("int8 quantisation needs onnxruntime (pip install onnxruntime)") from e

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
    quantize_static(str(onnx_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out_path
