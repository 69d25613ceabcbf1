"""Training's precision ``"auto"``: the faster of fp32 and bf16 for a forward + backward step."""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from ..errors import InputError
from ..runtime import PrecisionChoice, Workload, autocast, choose_precision, module_signature

# forward + backward calibration of precision="auto": a batch of two at this side (seconds, cached)
TRAIN_CALIBRATION_SIDE = 192


def train_workload(
    model: torch.nn.Module, device: torch.device, side: int = TRAIN_CALIBRATION_SIDE
) -> Workload:
    """One forward + backward of a copy of ``model.segmenter`` (train mode, channels-last, as the
    trainer runs it) on a random batch of two ``side`` x ``side`` images: what ``auto`` times."""
    net = getattr(model, "module", model)
    text_dim = net.config.text_dim

    def runner(precision: str):
        seg = copy.deepcopy(net.segmenter).to(device, memory_format=torch.channels_last).train()
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, side, side, generator=gen).to(
            device, memory_format=torch.channels_last
        )
        text = torch.randn(2, text_dim, generator=gen).to(device)
        target = torch.randint(0, 2, (2, side, side), generator=gen).to(device)

        def run():
            with autocast(device, precision):
                logits = seg(x, text)
            F.cross_entropy(logits.float(), target).backward()
            seg.zero_grad(set_to_none=True)

        return run

    return Workload(f"train:{module_signature(net.segmenter)}:2x{side}x{side}:cl", runner)


def choose_train_precision(
    precision: str, device: torch.device, model: torch.nn.Module | None = None
) -> PrecisionChoice:
    """``auto``: bf16 on CUDA (fp16 where bf16 is missing); on a CPU the faster of fp32 and bf16
    for ``model``'s forward + backward (:func:`train_workload`, measured once and cached; without
    a model, :func:`refvos.runtime.conv_workload`). fp16 needs CUDA.

    Resume stays bitwise exact at every precision (the same kernels run in the same order)."""
    workload = train_workload(model, device) if model is not None and precision == "auto" else None
    choice = choose_precision(precision, device, workload)
    if choice.precision == "fp16" and device.type != "cuda":
        raise InputError("--precision fp16 needs CUDA (use bf16 or fp32 on CPU)")
    return choice


def resolve_train_precision(
    precision: str, device: torch.device, model: torch.nn.Module | None = None
) -> str:
    """:func:`choose_train_precision`'s precision alone."""
    return choose_train_precision(precision, device, model).precision
