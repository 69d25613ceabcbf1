"""Inputs and model set-up for the benchmark: a synthetic clip with a moving object, a head fitted
so that masks are non-trivial, latency and FLOP measurement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from refvos.export.quantize import mask_agreement  # noqa: F401 - the sections use it from here
from refvos.media.image import to_tensor
from refvos.runtime import autocast

# the synthetic clips every agreement figure is measured on (refvos quantize calibrates on others)
AGREEMENT_SEED = 1000


def agreement_seeds(clips: int) -> range:
    """Seeds of the ``clips`` held-out synthetic clips of the agreement figures."""
    return range(AGREEMENT_SEED, AGREEMENT_SEED + clips)


def make_clip(
    num_frames: int, height: int, width: int, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB uint8 frames: a smooth textured background and a red disk moving left to right; and
    the disk's bool masks."""
    rng = np.random.default_rng(seed)
    small = rng.integers(
        0, 256, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8
    )
    background = np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR)).astype(
        np.float32
    )
    yy, xx = np.mgrid[0:height, 0:width]
    radius = 0.22 * min(height, width)
    frames, masks = [], []
    for i in range(num_frames):
        cx = width * (0.25 + 0.5 * i / max(1, num_frames - 1))
        cy = height * (0.5 + 0.1 * np.sin(i / 3))
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        frame = background * 0.7
        frame[mask] = (220, 40, 40)
        frame += rng.normal(0, 6, size=frame.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        masks.append(mask)
    return frames, masks


def write_frames(frames: list[np.ndarray], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(frame).save(path, quality=95)
        paths.append(path)
    return paths


@torch.no_grad()
def fit_head(
    model,
    frames: list[np.ndarray],
    masks: list[np.ndarray],
    text: torch.Tensor,
    ridge: float = 1e-2,
) -> dict[str, Any]:
    """Fit the last 1x1 conv (``classifier.conv_2``) by ridge regression of the object mask on its
    256-d input features (fp32), so that a randomly initialised network gives spatially coherent,
    content-dependent masks (random weights alone give empty or noise-like masks). Returns the
    fit's IoU with the object on the frames used."""
    seg = model.segmenter.eval()
    feats = []
    hook = seg.classifier.conv_2.register_forward_hook(lambda m, i, o: feats.append(i[0].float()))
    try:
        images = torch.cat([to_tensor(f)[None] for f in frames])
        seg(images, text.expand(len(frames), -1))
    finally:
        hook.remove()
    x = feats[0]  # (N, C, h, w)
    n, c, h, w = x.shape
    target = F.interpolate(
        torch.from_numpy(np.stack(masks)).float()[:, None], size=(h, w), mode="area"
    )[:, 0]
    y = (target > 0.5).float().reshape(-1) * 2 - 1
    xf = x.permute(0, 2, 3, 1).reshape(-1, c).double()
    mean, std = xf.mean(0), xf.std(0).clamp(min=1e-12)
    z = torch.cat([(xf - mean) / std, torch.ones(len(xf), 1, dtype=torch.float64)], 1)
    a = z.T @ z + ridge * len(z) * torch.eye(c + 1, dtype=torch.float64)
    coef = torch.linalg.solve(a, z.T @ y.double())
    wv = coef[:c] / std
    b = coef[c] - (mean * wv).sum()
    conv = seg.classifier.conv_2
    conv.weight.zero_()
    conv.bias.zero_()
    conv.weight[1, :, 0, 0] = (wv / 2).float()
    conv.weight[0, :, 0, 0] = (-wv / 2).float()
    conv.bias[1], conv.bias[0] = float(b / 2), float(-b / 2)
    logits = seg(images, text.expand(len(frames), -1))
    pred = (logits[:, 1] > logits[:, 0]).numpy()
    gt = np.stack(masks)
    inter, union = np.logical_and(pred, gt).sum(), np.logical_or(pred, gt).sum()
    return {
        "method": "ridge regression of classifier.conv_2 on its input features (random other weights)",
        "frames": len(frames),
        "fit_iou_with_object": float(inter / max(union, 1)),
        "foreground_fraction": float(pred.mean()),
    }


def count_flops(segmenter, height: int, width: int, text_dim: int) -> int:
    """FLOPs (2 per multiply-add) of one ``height x width`` frame through the segmentation network."""
    return count_arithmetic(segmenter, height, width, text_dim)["all"]


def taps_in_map(
    length: int, kernel: int, stride: int, padding: int, dilation: int
) -> tuple[int, int]:
    """Along one axis of a convolution over ``length`` positions: ``(outputs, products)``, the
    number of output positions and of (output position, kernel tap) pairs whose input position
    lies inside the map (the others multiply the zero padding)."""
    outputs = (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    products = sum(
        1
        for o in range(outputs)
        for t in range(kernel)
        if 0 <= o * stride - padding + t * dilation < length
    )
    return outputs, products


def count_arithmetic(
    segmenter, height: int, width: int, text_dim: int, batch: int = 1
) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of a ``batch`` of ``height x width`` frames through the
    segmentation network: ``all`` (every convolution tap, as :func:`count_flops`), ``in_map``
    (the convolutions' products with padding left out: what a direct convolution that skips the
    padding computes; a kernel that forms every product cannot compute less, only transforms of
    the Winograd kind trade products for additions and rounding), ``in_map_train``
    (forward, weight gradient and input gradient of a training step, ``in_map`` each, less the
    input gradient of convolutions that read the image)."""
    from torch.utils.flop_counter import FlopCounterMode

    convs = {"all": 0, "in_map": 0, "image": 0}

    def hook(module, inputs, _output) -> None:
        x = inputs[0]
        per_tap = x.shape[0] * x.shape[1] * module.out_channels // module.groups
        dims = [
            taps_in_map(
                x.shape[2 + i],
                module.kernel_size[i],
                module.stride[i],
                module.padding[i],
                module.dilation[i],
            )
            for i in (0, 1)
        ]
        full = 2 * per_tap * dims[0][0] * dims[1][0] * module.kernel_size[0] * module.kernel_size[1]
        inside = 2 * per_tap * dims[0][1] * dims[1][1]
        convs["all"] += full
        convs["in_map"] += inside
        if x.shape[1] == 3:  # reads the image: no input gradient in training
            convs["image"] += inside

    convs_modules = [m for m in segmenter.modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for m in convs_modules]
    x = torch.zeros(batch, 3, height, width)
    t = torch.zeros(batch, text_dim)
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            segmenter(x, t)
    finally:
        for h in handles:
            h.remove()
    total = int(counter.get_total_flops())
    other = total - convs["all"]  # matrix products outside the convolutions
    in_map = other + convs["in_map"]
    return {"all": total, "in_map": in_map, "in_map_train": 3 * in_map - convs["image"]}


def frame_runner(
    segmenter,
    height: int,
    width: int,
    text: torch.Tensor,
    precision: str,
    channels_last: bool,
    device: torch.device,
    fold_bn: bool = False,
    compile: bool = False,
    atrous: str = "conv",
):
    """A no-argument callable running one ``height x width`` frame (batch 1) through the
    segmenter's ``encode`` / ``decode`` (the Predictor's path); ``fold_bn``: on the
    BatchNorm-folded copy the Predictor runs in bf16; ``compile``: through
    ``torch.compile`` (inductor, freezing) on a copy, compiled by the first call; ``atrous``:
    the form of the ASPP's atrous convolutions (``taps``: :func:`refvos.modeling.head.atrous_by_taps`)."""
    import copy

    from refvos.modeling.surgery import fold_batchnorm, with_atrous_form
    from refvos.runtime.compiling import SegmenterRunner

    if fold_bn:
        segmenter = fold_batchnorm(segmenter)
    elif compile:  # frozen weights: a copy of its own, unaffected by later format changes of seg
        segmenter = copy.deepcopy(segmenter)
    segmenter = with_atrous_form(segmenter, atrous)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    segmenter.to(memory_format=fmt)
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    x = x.contiguous(memory_format=fmt)
    text = text.to(device)
    net = SegmenterRunner(segmenter, compile=compile)

    def run() -> None:
        with torch.inference_mode(), autocast(device, precision):
            net.decode(net.encode(x), text, (height, width))

    run.runner = net
    return run


def openvino_frame_runner(
    segmenter, height: int, width: int, text: torch.Tensor, precision: str, atrous: str = "conv"
):
    """:func:`frame_runner` through refvos's OpenVINO backend (:class:`OpenVINORunner`, the
    ``[openvino]`` extra) at ``precision``, its atrous convolutions in form ``atrous``: the path
    ``Predictor`` runs when ``auto`` chooses it."""
    from refvos.runtime.openvino_backend import OpenVINORunner

    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    net = OpenVINORunner(segmenter, precision, atrous=atrous)

    def run() -> None:
        with torch.inference_mode():
            net.decode(net.encode(x), text, (height, width))

    run.runner = net
    return run


def profile_top_ops(fn, top: int = 12) -> dict[str, Any]:
    """``torch.profiler`` of one call: the ops taking the most self CPU time, with their FLOPs
    and achieved GFLOP/s where the profiler counts FLOPs (convolutions, matmuls);
    ``convolution_self_s``: the self time of every convolution op (forward and backward)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    events = list(prof.key_averages())
    total = sum(e.self_cpu_time_total for e in events) or 1
    rows = []
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        rows.append(
            {
                "op": e.key,
                "calls": e.count,
                "self_s": round(e.self_cpu_time_total / 1e6, 4),
                "share": round(e.self_cpu_time_total / total, 4),
            }
        )
    flop_ops = []
    for e in sorted(events, key=lambda e: e.cpu_time_total, reverse=True):
        flops = int(getattr(e, "flops", 0) or 0)
        if flops:
            seconds = e.cpu_time_total / 1e6
            flop_ops.append(
                {
                    "op": e.key,
                    "calls": e.count,
                    "total_s": round(seconds, 4),
                    "gflop": round(flops / 1e9, 2),
                    "gflops_per_s": round(flops / seconds / 1e9, 1),
                }
            )
    convolution = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    return {
        "wall_total_self_s": round(total / 1e6, 4),
        "convolution_self_s": round(convolution / 1e6, 4),
        "top_self": rows,
        "flop_ops": flop_ops,
    }
