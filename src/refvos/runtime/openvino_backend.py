"""OpenVINO inference of the segmentation network (the optional extra ``refvos[openvino]``).

The segmenter runs as two OpenVINO models, split where the Predictor splits it
(:class:`~refvos.modeling.refvos.Segmenter`): the **encoder** ``images (B, 3, H, W) -> features
(B, 256, h, w)`` (the backbone and the head's ASPP) and the **head** ``features (B, 256, h, w),
text (B, D) -> logits (B, 2, h, w)`` (the fusion with the sentence and the last convolutions);
the bilinear upsampling to the image's size stays in PyTorch, as in ``Segmenter.decode``. Both
are converted by ``openvino.convert_model`` from the PyTorch modules with symbolic batch, height
and width, saved as OpenVINO IR under ``<cache>/models/<weights hash>-layout<GRAPH_LAYOUT>/`` and compiled with
OpenVINO's model cache (``CACHE_DIR``) in ``<cache>/compiled/``, where ``<cache>`` is
:func:`cache_root` (``openvino/`` in :func:`refvos.runtime.cache_dir`): a second run of the same
weights neither converts nor recompiles (:meth:`OpenVINORunner.report` says which happened).

Precision: ``fp32`` compiles with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO's CPU plugin would
otherwise run bf16 on CPUs with bf16 instructions), ``bf16`` with ``bf16``. An int8 encoder
(``refvos quantize``, :mod:`refvos.export.quantize`) replaces the converted encoder; its float parts and
the head run in f32. Without the ``openvino`` package :func:`require` raises one line naming
``pip install "refvos[openvino]"``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError, RefVOSError
from .precision import cache_dir

INSTALL_HINT = 'the OpenVINO backend needs the openvino extra: pip install "refvos[openvino]"'
ENCODER, HEAD = "encoder", "head"
# OpenVINO's names of the precisions the Predictor knows
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# where the encoder graph ends: 2, after the head's ASPP (Segmenter.encode); 1 (earlier refvos),
# after the backbone. Converted graphs and int8 encoders record it and are never mixed.
GRAPH_LAYOUT = 2


def available() -> bool:
    """Whether the ``openvino`` package is installed."""
    return importlib.util.find_spec("openvino") is not None


def require():
    """The ``openvino`` module, or a :class:`RefVOSError` naming the install command."""
    try:
        import openvino
    except ImportError as e:
        raise RefVOSError(INSTALL_HINT) from e
    return openvino


def version() -> str | None:
    """The installed OpenVINO's version, None without it."""
    if not available():
        return None
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("openvino")
    except PackageNotFoundError:
        return None


def cache_root() -> Path:
    """``openvino/`` under :func:`refvos.runtime.cache_dir`: converted IR and compiled blobs."""
    return cache_dir() / "openvino"


class EncoderGraph(nn.Module):
    """``images (B, 3, H, W) -> features (B, 256, h, w)``: the segmenter's ``encode``."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.backbone = segmenter.backbone
        self.classifier = segmenter.classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.visual(self.backbone(images))


class HeadGraph(nn.Module):
    """``features (B, 256, h, w), text (B, D) -> logits (B, 2, h, w)`` at the features' size."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.classifier = segmenter.classifier

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.classifier.decode(features, text)


def weights_key(segmenter: nn.Module) -> str:
    """A hash of the segmenter's architecture and weights (names, shapes, values): the folder of
    its converted models, and what an int8 model records to be matched with its checkpoint."""
    h = hashlib.sha1()
    for name, t in segmenter.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def shape_generic(segmenter: nn.Module) -> bool:
    """Whether one traced graph serves every image size: not for networks with TensorFlow
    "same" padding (EfficientNet-Lite's :class:`SamePadConv2d` computes its padding from the
    input size in Python, which tracing freezes), which are converted once per image size."""
    from ..modeling.efficientnet_lite import SamePadConv2d

    return not any(isinstance(m, SamePadConv2d) for m in segmenter.modules())


def ir_path(folder: Path, part: str, size: tuple[int, int] | None) -> Path:
    """The IR file of ``part`` (encoder / head) in ``folder`` for the input size ``size`` (the
    image's for the encoder, the features' for the head; None: the size-generic graph)."""
    return folder / (f"{part}.xml" if size is None else f"{part}-{size[0]}x{size[1]}.xml")


def _float_copy(segmenter: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(segmenter).to("cpu", memory_format=torch.contiguous_format).float().eval()


def _convert(
    module: nn.Module, example: tuple[torch.Tensor, ...], shapes: list[list[int]], path: Path
) -> Path:
    ov = require()
    import warnings

    # autocast off: a per-size graph is converted on first use, inside the Predictor's autocast,
    # whose casts the tracer would record (and OpenVINO cannot convert)
    with torch.no_grad(), torch.autocast("cpu", enabled=False), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's deprecation and constant warnings
        model = ov.convert_model(
            module, example_input=example, input=[ov.PartialShape(s) for s in shapes]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_ir(model, path)
    return path


def convert_encoder(
    segmenter: nn.Module, folder: str | os.PathLike, size: tuple[int, int] | None = None
) -> Path:
    """Write the encoder IR of ``segmenter`` (an fp32 CPU copy) into ``folder``: batch symbolic,
    height and width too when ``size`` is None, else fixed to ``size = (H, W)``."""
    seg = _float_copy(segmenter)
    h, w = size or (64, 64)
    dims = [-1, -1] if size is None else [h, w]
    return _convert(
        EncoderGraph(seg).eval(),
        (torch.zeros(1, 3, h, w),),
        [[-1, 3, *dims]],
        ir_path(Path(folder), ENCODER, size),
    )


def convert_head(
    segmenter: nn.Module, folder: str | os.PathLike, size: tuple[int, int] | None = None
) -> Path:
    """Write the head IR of ``segmenter`` into ``folder`` for features of ``size = (h, w)``
    (None: any)."""
    seg = _float_copy(segmenter)
    text_dim = seg.classifier.aspp.embedding_project[0].in_features
    channels = seg.classifier.aspp.project[0].out_channels
    h, w = size or (8, 8)
    dims = [-1, -1] if size is None else [h, w]
    return _convert(
        HeadGraph(seg).eval(),
        (torch.zeros(1, channels, h, w), torch.zeros(1, text_dim)),
        [[-1, channels, *dims], [-1, text_dim]],
        ir_path(Path(folder), HEAD, size),
    )


def head_ops(model, segmenter: nn.Module) -> list[str]:
    """Friendly names of the convolutions of an encoder graph (an ``openvino.Model`` of
    :class:`EncoderGraph` of ``segmenter``) that belong to the head's ASPP and projection, which
    the graph ends with. Every ASPP convolution depends on the backbone's output, which depends
    on every backbone convolution, so in the graph's topological order the head's convolutions
    are the last ones: as many as ``segmenter``'s ASPP has ``Conv2d`` modules (names do not tell:
    the converter renames a convolution it fuses with its BatchNorm)."""
    aspp = segmenter.classifier.aspp
    count = sum(
        isinstance(m, nn.Conv2d) for part in (aspp.convs, aspp.project) for m in part.modules()
    )
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    if len(convs) <= count:
        raise RefVOSError(
            f"the encoder graph has {len(convs)} convolutions, expected more than the head's {count}"
        )
    return [op.get_friendly_name() for op in convs[-count:]]


def save_ir(model, path: Path) -> None:
    """``ov.save_model`` (weights uncompressed) to temporary files, then moved into place."""
    ov = require()
    tmp = Path(tempfile.mkdtemp(prefix=path.stem + ".", dir=path.parent))
    try:
        ov.save_model(model, tmp / path.name, compress_to_fp16=False)
        os.replace(tmp / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compile_model(path: str | os.PathLike, precision: str, threads: int | None = None):
    """``path`` (an IR ``.xml``) compiled for the CPU at ``precision`` (``fp32``/``bf16``; ``int8``:
    the quantised graph with its float parts in f32), cached in ``cache_root()/compiled``."""
    ov = require()
    core = ov.Core()
    config = {
        "CACHE_DIR": str(cache_root() / "compiled"),
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION.get(precision, "f32"),
    }
    return core.compile_model(str(path), "CPU", config)


def loaded_from_cache(compiled) -> bool:
    """Whether OpenVINO took ``compiled`` from its model cache (no compilation)."""
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except RuntimeError:
        return False


def int8_encoder_info(path: str | os.PathLike) -> dict[str, Any]:
    """The record ``refvos quantize`` wrote beside an int8 encoder ``path`` (``.xml``): its
    ``weights`` key, calibration and measured agreement. A missing or foreign file is an
    :class:`InputError`."""
    import json

    path = Path(path)
    if path.suffix != ".xml" or not path.is_file() or not path.with_suffix(".bin").is_file():
        raise InputError(
            f"int8 model {path}: expected an OpenVINO .xml file with its .bin beside it "
            "(written by `refvos quantize`)"
        )
    record = path.with_suffix(".json")
    try:
        info = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        raise InputError(
            f"int8 model {path}: its record {record.name} (written by `refvos quantize`) "
            f"is missing or not JSON ({e})"
        ) from e
    if not isinstance(info, dict) or "weights" not in info:
        raise InputError(
            f"int8 model {path}: {record.name} has no 'weights' key (not written by refvos quantize)"
        )
    if info.get("graph_layout", 1) != GRAPH_LAYOUT:
        raise InputError(
            f"int8 model {path}: written by an earlier refvos whose encoder ended at the backbone "
            f"(graph layout {info.get('graph_layout', 1)}, this one reads {GRAPH_LAYOUT}); "
            "write it again with `refvos quantize`"
        )
    return info


class OpenVINORunner:
    """``encode(images) -> features`` and ``decode(features, text, size) -> float logits`` of
    ``segmenter`` through OpenVINO at ``precision`` (``fp32`` / ``bf16``), the interface of
    :class:`~refvos.runtime.compiling.SegmenterRunner`. Size-generic networks (:func:`shape_generic`)
    run one graph for every size; the others one per image size, converted on first use.
    ``int8_encoder``: an int8 encoder written by ``refvos quantize`` for these weights
    (checked), run instead of the float one. ``atrous``: the form the encoder's atrous
    convolutions are converted in (:data:`refvos.modeling.head.ATROUS_FORMS`; its graphs are
    kept in a folder of their own, ``<weights hash>-layout<GRAPH_LAYOUT>-taps``).

    ``report()``: ``{"backend": "openvino", "openvino": version, "precision", "atrous", "int8_model",
    "converted": graphs this process converted (0: all came from the cache folder), "convert_s",
    "compile_s", "loaded_from_cache": whether every compiled model came from OpenVINO's model
    cache, "sizes": the input sizes compiled ([] when size-generic), "cache_dir"}``.
    """

    def __init__(
        self,
        segmenter: nn.Module,
        precision: str = "fp32",
        int8_encoder: str | os.PathLike | None = None,
        atrous: str = "conv",
    ) -> None:
        from ..modeling.surgery import with_atrous_form

        require()
        self.segmenter = segmenter
        self.precision = "int8" if int8_encoder is not None else precision
        self.atrous = atrous
        self._converted_from = with_atrous_form(segmenter, atrous)
        self.generic = shape_generic(segmenter)
        self.key = weights_key(segmenter)
        form = "" if atrous == "conv" else f"-{atrous}"
        self.folder = cache_root() / "models" / f"{self.key}-layout{GRAPH_LAYOUT}{form}"
        self.int8_model = str(int8_encoder) if int8_encoder is not None else None
        self.int8_size: tuple[int, int] | None = None
        if int8_encoder is not None:
            info = int8_encoder_info(int8_encoder)
            if info["weights"] != self.key:
                raise InputError(
                    f"int8 model {int8_encoder} was quantised from other weights "
                    f"({info['weights']}) than this checkpoint's ({self.key})"
                )
            self.int8_size = tuple(info["size"]) if info.get("size") else None
        self.converted = 0
        self.convert_s = self.compile_s = 0.0
        self.cached = True
        self._requests: dict[tuple[str, tuple[int, int] | None], Any] = {}
        if self.generic:  # convert and compile now: the first frame then runs at once
            self._request(ENCODER, None)
            self._request(HEAD, None)

    def _request(self, part: str, size: tuple[int, int] | None):
        """The infer request of ``part`` for input ``size`` (None when size-generic)."""
        key = (part, None if self.generic else size)
        if key not in self._requests:
            if part == ENCODER and self.int8_model is not None:
                if self.int8_size is not None and key[1] != self.int8_size:
                    raise InputError(
                        f"int8 model {self.int8_model} was quantised for {self.int8_size[1]}x"
                        f"{self.int8_size[0]} images of this network, got {size[1]}x{size[0]}"
                    )
                path = Path(self.int8_model)
            else:
                path = ir_path(self.folder, part, key[1])
                if not path.is_file():
                    start = time.perf_counter()
                    (convert_encoder if part == ENCODER else convert_head)(
                        self._converted_from, self.folder, key[1]
                    )
                    self.convert_s += time.perf_counter() - start
                    self.converted += 1
            start = time.perf_counter()
            compiled = compile_model(path, "fp32" if self.int8_model else self.precision)
            self.compile_s += time.perf_counter() - start
            self.cached = self.cached and loaded_from_cache(compiled)
            self._requests[key] = compiled.create_infer_request()
        return self._requests[key]

    def expect_frames(self, frames: int | None) -> None:
        """:class:`~refvos.runtime.compiling.SegmenterRunner`'s interface. OpenVINO has no compile
        decision to weigh against the frames ahead: its graphs are compiled once (or read from
        its model cache) on first use."""

    def freeze(self) -> None:
        """:class:`~refvos.runtime.compiling.SegmenterRunner`'s interface: nothing is compiled by
        ``torch.compile`` here (a per-size network still converts a new size on first use, which
        is why ``refvos serve``'s ``auto`` keeps such networks on PyTorch)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 256, h, w)`` float32 of normalised images ``(B, 3, H, W)``."""
        x = np.ascontiguousarray(images.detach().float().cpu().numpy())
        out = self._request(ENCODER, tuple(x.shape[-2:])).infer(
            {0: x}, share_inputs=True, share_outputs=False
        )
        return torch.from_numpy(out[0]).to(images.device)

    def decode(
        self, features: torch.Tensor, text: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Float logits ``(B, 2, *size)`` of features ``(B, 256, h, w)`` and sentence vectors
        ``(B, D)`` or one ``(1, D)`` shared by all."""
        if text.shape[0] == 1 and features.shape[0] > 1:
            text = text.expand(features.shape[0], -1)
        f = np.ascontiguousarray(features.detach().float().cpu().numpy())
        t = np.ascontiguousarray(text.detach().float().cpu().numpy())
        out = self._request(HEAD, tuple(f.shape[-2:])).infer(
            {0: f, 1: t}, share_inputs=True, share_outputs=False
        )
        logits = torch.from_numpy(out[0]).to(features.device)
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)

    def report(self) -> dict[str, Any]:
        sizes = sorted({k[1] for k in self._requests if k[0] == ENCODER and k[1] is not None})
        return {
            "backend": "openvino",
            "openvino": version(),
            "precision": self.precision,
            "atrous": self.atrous,
            "int8_model": self.int8_model,
            "converted": self.converted,
            "convert_s": round(self.convert_s, 3),
            "compile_s": round(self.compile_s, 3),
            "loaded_from_cache": self.cached,
            "sizes": [list(s) for s in sizes],
            "cache_dir": str(cache_root()),
        }
