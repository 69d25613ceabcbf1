"""Which engine runs the segmentation network, and at which precision: chosen by measuring.

``backend="torch"`` runs the network in PyTorch (eager, or ``torch.compile`` d as
:mod:`refvos.runtime.compiling` decides), ``"openvino"`` through OpenVINO (:mod:`refvos.runtime.openvino_backend`,
the optional extra ``refvos[openvino]``), and ``"auto"`` (the default) times one frame of the
work about to run in each available backend and precision (:func:`inference_workload`, measured
and cached by :func:`refvos.runtime.choose_precision`) and takes the fastest: OpenVINO must beat
PyTorch by :data:`refvos.runtime.BACKEND_MARGIN`, bf16 fp32 by
:data:`refvos.runtime.BF16_MARGIN`. Without OpenVINO installed, on a GPU, or with an explicit
precision, ``auto`` is PyTorch. A reduced precision on a CPU (``auto``'s, or an explicit one) is
timed with the ASPP's atrous convolutions in both forms (:data:`ATROUS_FORMS`: the dilated
convolution, and :func:`~refvos.modeling.head.atrous_by_taps`, 2-3x faster per frame in bf16 on
an Intel Xeon family 6 model 207 with AMX, docs/BENCHMARKS.md); fp32 runs the convolution. No
CPU flag decides. An int8 model (``refvos quantize``) runs in OpenVINO, only when one is given.
The :class:`~refvos.runtime.PrecisionChoice` records the backend, the precision, the atrous form
and the measured reason.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..errors import InputError
from ..modeling.head import ATROUS_FORMS
from ..modeling.surgery import with_atrous_form
from . import openvino_backend
from .compiling import SegmenterRunner
from .precision import (
    PRECISION_ENV,
    PrecisionChoice,
    Workload,
    autocast,
    choose_precision,
    module_signature,
    split_candidate,
)

BACKENDS = ("auto", "torch", "openvino")
# the long side of the calibration input of "auto"
CALIBRATION_SIDE = 320


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def candidate_backends(
    backend: str,
    device: torch.device,
    int8_model: str | os.PathLike | None = None,
    precision: str = "auto",
) -> tuple[str, ...]:
    """The backends ``backend`` leaves to choose from on ``device`` for ``precision``: ``auto`` is
    PyTorch and OpenVINO where OpenVINO is installed, the device is a CPU and the precision is
    ``auto`` too (an explicit precision, also :data:`~refvos.runtime.PRECISION_ENV`, keeps
    ``auto`` on PyTorch: fp32 there is the original's exact arithmetic), else PyTorch alone;
    ``openvino`` (or an int8 model) without the package is a one-line error naming the install
    command."""
    check_backend(backend)
    if int8_model is not None or backend == "openvino":
        openvino_backend.require()
        if device.type != "cpu":
            what = "an int8 model" if int8_model is not None else "backend openvino"
            raise InputError(f"{what} runs on the CPU, got device {device}")
        if int8_model is not None and backend == "torch":
            raise InputError(
                "an int8 model runs in OpenVINO: use backend 'auto' or 'openvino' with it"
            )
        return ("openvino",)
    explicit = precision != "auto" or os.environ.get(PRECISION_ENV, "auto").strip() not in (
        "",
        "auto",
    )
    if backend == "auto" and device.type == "cpu" and not explicit and openvino_backend.available():
        return ("torch", "openvino")
    return ("torch",)


def inference_workload(
    segmenter_for: Callable[[str, str], torch.nn.Module],
    text_dim: int,
    side: int,
    device: torch.device,
    channels_last: bool = True,
    openvino_for: Callable[[str, str], Any] | None = None,
) -> Workload:
    """One frame (batch 1, ``side`` x ``side``) through ``encode`` + ``decode`` of the runner each
    variant would use: for a PyTorch variant the segmenter ``segmenter_for(precision, atrous)``
    (e.g. the BN-folded copy for bf16, built only when that precision is timed), for
    ``openvino:<variant>`` the runner ``openvino_for(precision, atrous)``."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def runner(name: str):
        backend, precision, atrous = split_candidate(name)
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(
            device, memory_format=fmt
        )
        text = torch.randn(1, text_dim, generator=torch.Generator().manual_seed(1)).to(device)
        if backend == "openvino":
            engine = openvino_for(precision, atrous)

            def run_openvino():
                return engine.decode(engine.encode(x), text, (side, side))

            run_openvino()  # converts / compiles a per-size graph here, not in the timed warm-up
            return run_openvino
        seg = segmenter_for(precision, atrous)

        @torch.inference_mode()
        def run():
            with autocast(device, precision):
                return seg.decode(seg.encode(x), text, (side, side))

        return run

    name = f"infer:{module_signature(segmenter_for('fp32', 'conv'))}:{side}x{side}:{'cl' if channels_last else 'nchw'}"
    if openvino_for is not None:
        name += f":openvino-{openvino_backend.version()}"
    return Workload(name, runner)


class Backends:
    """The runners of one network: :meth:`choose` measures (or takes) the backend and precision,
    :meth:`runner` gives the runner of a choice (``encode`` / ``decode`` / ``report``: a
    :class:`~refvos.runtime.compiling.SegmenterRunner` or an
    :class:`~refvos.runtime.openvino_backend.OpenVINORunner`; the OpenVINO runners built while measuring
    are reused).

    ``segmenter_for(precision)``: the PyTorch segmenter that precision runs (:meth:`segmenter`
    gives it in an atrous form); ``int8_model``: an int8 encoder written by ``refvos quantize``
    (then the choice is int8 in OpenVINO)."""

    def __init__(
        self,
        segmenter_for: Callable[[str], torch.nn.Module],
        text_dim: int | None,
        device: torch.device,
        backend: str = "auto",
        int8_model: str | os.PathLike | None = None,
        channels_last: bool = True,
    ) -> None:
        self.segmenter_for, self.text_dim, self.device = segmenter_for, text_dim, device
        self.channels_last = channels_last
        self.int8_model = int8_model
        self.int8_info = (
            openvino_backend.int8_encoder_info(int8_model) if int8_model is not None else None
        )
        self.backend = check_backend(backend)
        candidate_backends(backend, device, int8_model)  # the install / device errors, at once
        self._openvino: dict[tuple[str, str], Any] = {}

    def segmenter(self, precision: str, atrous: str = "conv") -> torch.nn.Module:
        """The PyTorch segmenter of ``precision`` with its atrous convolutions in form ``atrous``
        (a copy sharing the weights where that is not the form they have)."""
        return with_atrous_form(self.segmenter_for(precision), atrous)

    def openvino_for(self, precision: str, atrous: str = "conv"):
        if (precision, atrous) not in self._openvino:
            self._openvino[precision, atrous] = openvino_backend.OpenVINORunner(
                self.segmenter_for("fp32"), precision, self.int8_model, atrous
            )
        return self._openvino[precision, atrous]

    def choose(self, precision: str, side: int) -> PrecisionChoice:
        """The backend and precision (``side``: the calibration frame's side)."""
        if self.int8_info is not None:
            agreement = (self.int8_info.get("agreement") or {}).get("mean_iou")
            return PrecisionChoice(
                "int8",
                "explicit",
                f"int8 model {self.int8_model} was given "
                f"(mask mean IoU vs fp32 {agreement} on held-out frames)",
                backend="openvino",
            )
        backends = candidate_backends(self.backend, self.device, self.int8_model, precision)
        if self.backend == "auto" and "openvino" in backends:
            try:  # a cached choice builds nothing here; a measurement builds the OpenVINO runners
                return choose_precision(
                    precision,
                    self.device,
                    self.workload(side, backends),
                    backends=backends,
                    atrous_forms=ATROUS_FORMS,
                )
            except Exception as e:  # noqa: BLE001 - auto falls back to PyTorch, saying why
                warnings.warn(
                    f"OpenVINO could not run this network ({type(e).__name__}: {e}); "
                    "backend auto uses PyTorch",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._openvino.clear()
                backends = ("torch",)
        return choose_precision(
            precision,
            self.device,
            self.workload(side, backends),
            backends=backends,
            atrous_forms=ATROUS_FORMS,
        )

    def workload(self, side: int, backends: tuple[str, ...]) -> Workload:
        return inference_workload(
            self.segmenter,
            self.text_dim,
            side,
            self.device,
            self.channels_last,
            self.openvino_for if "openvino" in backends else None,
        )

    def runner(self, choice: PrecisionChoice, compile: str | bool):
        if choice.backend == "openvino":
            runner = self.openvino_for(
                "fp32" if choice.precision == "int8" else choice.precision, choice.atrous
            )
            self._openvino.clear()  # the others were for measuring only
            return runner
        self._openvino.clear()
        return SegmenterRunner(self.segmenter(choice.precision, choice.atrous), compile)

    def report(self) -> dict[str, Any] | None:
        """The int8 model's record (``refvos quantize``'s JSON), None without one."""
        if self.int8_info is None:
            return None
        return {"model": str(self.int8_model), **self.int8_info}


def torch_precision(choice: PrecisionChoice) -> str:
    """The precision of the parts PyTorch still runs (the text encoder; with the PyTorch backend
    the segmenter too): fp32 under an int8 model."""
    return "fp32" if choice.precision == "int8" else choice.precision
