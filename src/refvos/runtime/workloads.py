"""What precision ``"auto"`` times for inference: one frame through a segmenter's encode + decode
(the Predictor's and the evaluator's workload; training's is :mod:`refvos.engine.train_precision`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .precision import Workload, autocast, module_signature

# the long side of the calibration input of precision="auto" (see :func:`refvos.runtime.choose_precision`)
CALIBRATION_SIDE = 320


def inference_workload(segmenter_for: Callable[[str], torch.nn.Module], text_dim: int, side: int,
                       device: torch.device, channels_last: bool = True) -> Workload:
    """One frame (batch 1, ``side`` x ``side``) through ``encode`` + ``decode`` of the segmenter
    ``segmenter_for(precision)`` each precision would run (e.g. the BN-folded copy for bf16; built
    only when that precision is timed)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def runner(precision: str):
        seg = segmenter_for(precision)
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device, memory_format=fmt)
        text = torch.randn(1, text_dim, generator=torch.Generator().manual_seed(1)).to(device)

        @torch.inference_mode()
        def run():
            with autocast(device, precision):
                return seg.decode(seg.encode(x), text, (side, side))

        return run

    name = f"infer:{module_signature(segmenter_for('fp32'))}:{side}x{side}:{'cl' if channels_last else 'nchw'}"
    return Workload(name, runner)
