"""Opt-in int8 inference of the segmentation network: calibrated int8 that keeps the mask.

Two engines share one recipe (the backbone in int8, calibrated on real frames; the head, whose
low-contrast logits decide the mask's boundary, in float):

- **OpenVINO** (:func:`quantize_encoder`, what ``refvos quantize`` writes and ``Predictor(...,
  int8_model=...)`` runs): NNCF's post-training quantisation of the encoder graph
  (:mod:`refvos.runtime.openvino_backend`), whose last part, the head's ASPP, stays float
  (NNCF's ignored scope), with activation ranges over all calibration frames
  (:func:`_advanced_parameters`), accuracy-controlled, recorded beside the model with its measured
  agreement with the fp32 PyTorch path on held-out frames (:func:`int8_agreement`; 0.994 mean IoU
  on the demo network, docs/BENCHMARKS.md);
- **ONNX Runtime** (:func:`quantize_segmenter`) for an exported graph (``refvos export``):

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
import torch

from ..deps import require
from ..errors import InputError, RefVOSError

HEAD_PREFIX = "/classifier/"  # node names of RefVOSHead in an exported segmentation graph


def quantize_segmenter(
    onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: Iterable[tuple[np.ndarray, np.ndarray]],
    float_head: bool = True,
) -> Path:
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

    feeds = [
        {"images": np.ascontiguousarray(x, np.float32), "text": np.ascontiguousarray(t, np.float32)}
        for x, t in calibration
    ]
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
        head = [
            n.name for n in onnx.load(str(prepared)).graph.node if n.name.startswith(HEAD_PREFIX)
        ]
        quantize_static(
            str(prepared),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head if float_head else [],
        )
    return out_path


# ------------------------------------------------------------------------------ OpenVINO (NNCF)

RECORD_VERSION = 1
# accuracy-controlled quantisation keeps the calibration frames' mask mean IoU within this of fp32
DEFAULT_MAX_DROP = 0.01


def mask_agreement(ref: list[np.ndarray], got: list[np.ndarray]) -> dict[str, float]:
    """Mean and least foreground IoU of bool masks ``(H, W)`` over pairs (1 when both are
    empty), the fraction of pixels that agree, the number of masks, the fractions of masks
    identical and at IoU >= 0.98, and the reference masks' mean foreground fraction."""
    ious, pixels, identical = [], [], []
    for a, b in zip(ref, got):
        union = np.logical_or(a, b).sum()
        ious.append(float(np.logical_and(a, b).sum() / union) if union else 1.0)
        pixels.append(float((a == b).mean()))
        identical.append(bool((a == b).all()))
    return {
        "mean_iou": float(np.mean(ious)),
        "min_iou": float(np.min(ious)),
        "pixel_agreement": float(np.mean(pixels)),
        "masks": len(ious),
        "frames_identical_fraction": float(np.mean(identical)),
        "frames_iou_ge_0.98_fraction": float(np.mean([i >= 0.98 for i in ious])),
        "reference_foreground_fraction": float(np.mean([a.mean() for a in ref])),
    }


def int8_agreement(
    model,
    int8_model: str | os.PathLike,
    held_out: list[tuple[np.ndarray, str]],
    max_size: int | str | None = "model",
) -> dict[str, float]:
    """Masks of the int8 model against the fp32 PyTorch Predictor on ``held_out`` ``(frame RGB
    uint8 (H, W, 3), expression)`` pairs (:func:`mask_agreement`)."""
    from ..predictor import Predictor

    fp32 = Predictor(
        model, device="cpu", precision="fp32", backend="torch", max_size=max_size, compile=False
    )
    int8 = Predictor(model, device="cpu", max_size=max_size, int8_model=int8_model, compile=False)
    ref = [fp32.predict(frame, expression) for frame, expression in held_out]
    got = [int8.predict(frame, expression) for frame, expression in held_out]
    return mask_agreement(ref, got)


ACTIVATION_RANGES = "min-max over all calibration frames"


def _advanced_parameters():
    """NNCF's advanced parameters of the recipe: each activation's range is the least minimum and
    the greatest maximum over all calibration frames (NNCF's ``MINMAX``), not its default for
    per-tensor activations, the mean over frames of each frame's minimum and maximum, which
    clips the peaks a few frames reach. On a from-scratch ``refvos_r101`` (docs/BENCHMARKS.md,
    run M) the held-out masks' agreement with fp32 rose from 0.969 to 0.985 mean IoU with it."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
    )


def quantize_encoder(
    model,
    out: str | os.PathLike,
    calibration: list[tuple[np.ndarray, str]],
    held_out: list[tuple[np.ndarray, str]],
    max_size: int | str | None = "model",
    max_drop: float | None = DEFAULT_MAX_DROP,
    preset: str = "performance",
) -> dict:
    """Write the int8 encoder of ``model`` (a :class:`RefVOS`) to ``out`` (OpenVINO IR ``.xml`` +
    ``.bin``) and its record ``out.json``; return the record.

    ``calibration``: ``(frame RGB uint8 (H, W, 3), expression)`` pairs of one frame size; their
    preprocessed images (as the Predictor makes them, capped at ``max_size``) calibrate the
    activation ranges, and with ``max_drop`` they also validate: NNCF's accuracy-controlled
    quantisation returns layers to float, most sensitive first, until the masks (int8 encoder,
    float head) agree with fp32's at a mean IoU of at least ``1 - max_drop`` on them (None:
    plain post-training quantisation). ``held_out``: pairs of other frames on which the int8
    masks are compared with the fp32 Predictor's (the record's ``agreement``)."""
    import time

    from ..io import atomic_write_json
    from ..modeling.postprocess import foreground_mask
    from ..predictor import Predictor
    from ..runtime import openvino_backend as ovb

    ov = ovb.require()
    try:
        import nncf
    except ImportError as e:
        raise RefVOSError(ovb.INSTALL_HINT) from e
    out = Path(out)
    if out.suffix != ".xml":
        raise InputError(
            f"int8 model path {out}: expected an OpenVINO .xml path (its .bin and .json go beside it)"
        )
    if not calibration or not held_out:
        raise InputError(
            "int8 quantisation needs calibration and held-out (frame, expression) pairs"
        )
    start = time.perf_counter()
    predictor = Predictor(
        model,
        device="cpu",
        precision="fp32",
        backend="torch",
        max_size=max_size,
        channels_last=False,
        compile=False,
    )
    images = [predictor.preprocess(frame) for frame, _ in calibration]
    sizes = {tuple(x.shape[-2:]) for x in images}
    if len(sizes) > 1:
        raise InputError(
            f"calibration frames must have one size after scaling, got {sorted(sizes)}"
        )
    segmenter = predictor.model.segmenter
    size = None if ovb.shape_generic(segmenter) else next(iter(sizes))
    texts = predictor.encode_expressions([e for _, e in calibration])
    with torch.inference_mode():
        validation = [
            (x.numpy(), t[None], foreground_mask(segmenter(x, t[None]))[0])
            for x, t in zip(images, texts)
        ]

    def mean_iou(compiled, items) -> float:
        ious = []
        for x, text, ref in items:
            with torch.inference_mode():
                got = foreground_mask(
                    segmenter.decode(torch.from_numpy(compiled(x)[0]), text, x.shape[-2:])
                )[0]
            union = int((ref | got).sum())
            ious.append(int((ref & got).sum()) / union if union else 1.0)
        return float(np.mean(ious))

    with tempfile.TemporaryDirectory(prefix="refvos-quantize-") as tmp:
        fp32_model = ov.Core().read_model(str(ovb.convert_encoder(segmenter, tmp, size)))
        calibration_data = nncf.Dataset(validation, lambda item: item[0])
        head = ovb.head_ops(fp32_model, segmenter)  # the ASPP the encoder graph ends with
        common = {
            "preset": nncf.QuantizationPreset(preset),
            "subset_size": len(validation),
            "ignored_scope": nncf.IgnoredScope(names=head, validate=False),
        }
        advanced = _advanced_parameters()
        if max_drop is None:
            quantized = nncf.quantize(
                fp32_model, calibration_data, advanced_parameters=advanced, **common
            )
        else:
            quantized = nncf.quantize_with_accuracy_control(
                fp32_model,
                calibration_data,
                nncf.Dataset(validation),
                mean_iou,
                max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=advanced,
                **common,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    ovb.save_ir(quantized, out)
    record = {
        "format": "refvos int8 encoder (OpenVINO IR, NNCF post-training quantisation)",
        "version": RECORD_VERSION,
        "weights": ovb.weights_key(segmenter),
        "graph_layout": ovb.GRAPH_LAYOUT,
        "variant": getattr(model.config, "variant", None),
        "size": list(size) if size else None,
        "calibration_frames": len(validation),
        "recipe": {
            "encoder": "int8",
            "head": "float (f32): the ASPP at the end of the encoder graph and the decoder",
            "preset": preset,
            "activation_ranges": ACTIVATION_RANGES,
            "accuracy_control_max_iou_drop": max_drop,
        },
        "openvino": ovb.version(),
        "nncf": nncf.__version__,
        "agreement": None,
    }
    atomic_write_json(out.with_suffix(".json"), record)
    record["quantize_s"] = round(time.perf_counter() - start, 1)
    agreement = int8_agreement(model, out, held_out, max_size)
    record["agreement"] = {
        **agreement,
        "expressions": sorted({e for _, e in held_out}),
        "reference": "fp32 PyTorch Predictor",
    }
    atomic_write_json(out.with_suffix(".json"), record)
    return record
