"""EfficientNet-Lite0 feature extractor in plain PyTorch, with the parameter names of timm's
``tf_efficientnet_lite0``.

``refvos_lite``'s image encoder is timm's ``tf_efficientnet_lite0`` built with
``features_only=True, output_stride=8``. Importing timm imports torchvision and, through
``torchvision.ops``, ``torch._dynamo``: about two seconds of a single ``refvos predict`` with the
demo's checkpoint. :class:`EfficientNetLiteTrunk` builds the same network -- TensorFlow "same"
padding on the stride-2 convolutions, BatchNorm with eps 1e-3, ReLU6, no squeeze-excitation,
timm's dilation rule at output stride 8 and its initialisation -- and computes what timm's
network computes (tested against it to float tolerance, in eval and training mode, at every
stage). Its ``state_dict`` has timm's keys and shapes, so the checkpoints trained with timm's
network load into it unchanged.

The activations are separate parameter-free modules (timm fuses them into ``BatchNormAct2d``),
so every conv/BN pair is a plain ``Conv2d`` + ``BatchNorm2d`` that
:func:`~refvos.modeling.surgery.fold_batchnorm` can fold.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon (timm's tf_ variants)
STEM_CHANNELS = 32

# tf_efficientnet_lite0's stages (timm's arch_def, depth and width multipliers 1.0):
# (block, repeats, kernel, stride, expansion, out channels); "ds" = depthwise-separable, "ir" =
# inverted residual (MobileNetV2)
LITE0_STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
# feature stage (timm's out_indices 0-4: strides 2, 4, 8, 16, 32 without dilation) -> last block
FEATURE_BLOCKS = (0, 1, 2, 4, 6)
# the classifier's tensors after the trunk in timm's full model (the shipped ImageNet weights)
CLASSIFIER_KEYS = (
    "conv_head.weight",
    "bn2.weight",
    "bn2.bias",
    "bn2.running_mean",
    "bn2.running_var",
    "bn2.num_batches_tracked",
    "classifier.weight",
    "classifier.bias",
)


class SamePadConv2d(nn.Conv2d):
    """``Conv2d`` with TensorFlow's "same" padding, computed from the input size: the output has
    ``ceil(H / stride)`` rows, and the odd padding pixel goes to the bottom / right (timm's
    ``Conv2dSame``). ``(B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s))``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0,
            dilation=dilation,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]
        ):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def conv2d_same(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> nn.Conv2d:
    """timm's ``create_conv2d(..., padding="same")``: a fixed symmetric padding where it equals
    TensorFlow's "same" (stride 1, even ``dilation * (kernel_size - 1)``), else
    :class:`SamePadConv2d`."""
    if stride == 1 and (dilation * (kernel_size - 1)) % 2 == 0:
        return nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
    return SamePadConv2d(in_channels, out_channels, kernel_size, stride, dilation, groups)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise kxk conv + BN + ReLU6, pointwise 1x1 conv + BN, residual when shapes allow:
    ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv_dw = conv2d_same(
            in_channels, in_channels, kernel_size, stride, dilation, groups=in_channels
        )
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.has_skip = stride == 1 and in_channels == out_channels

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The conv/BN pairs (see :mod:`refvos.modeling.surgery`)."""
        return (("conv_dw", "bn1"), ("conv_pw", "bn2"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x)))))
        return out + x if self.has_skip else out


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion + BN + ReLU6, depthwise kxk + BN + ReLU6, 1x1 projection
    + BN, residual when shapes allow: ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        expansion: int = 6,
    ) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.conv_pw = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_dw = conv2d_same(mid, mid, kernel_size, stride, dilation, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.act2 = nn.ReLU6(inplace=True)
        self.conv_pwl = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.has_skip = stride == 1 and in_channels == out_channels

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The conv/BN pairs (see :mod:`refvos.modeling.surgery`)."""
        return (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_skip else out


class EfficientNetLiteTrunk(nn.Module):
    """The stem and the first ``num_stages`` block stages of EfficientNet-Lite0 (timm's
    ``conv_stem``, ``bn1``, ``blocks.N.M``), without head and classifier.

    ``output_stride`` (8, 16 or 32): past it, a stage's stride 2 becomes 1 and the dilation of
    the following blocks doubles; as in timm's builder (and torchvision's ResNet), the block whose
    stride was removed keeps the previous dilation.
    ``forward(images (B, 3, H, W)) -> (B, C, H / s, W / s)`` (C: the last stage's channels;
    s: the stride reached by that stage, at most ``output_stride``).
    """

    def __init__(self, num_stages: int = len(LITE0_STAGES), output_stride: int = 8) -> None:
        super().__init__()
        if not 1 <= num_stages <= len(LITE0_STAGES):
            raise ValueError(f"num_stages must be 1..{len(LITE0_STAGES)}, got {num_stages}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.conv_stem = conv2d_same(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        self.act1 = nn.ReLU6(inplace=True)
        channels, current_stride, dilation = STEM_CHANNELS, 2, 1
        stages = []
        for kind, repeats, kernel, stride, expansion, out_channels in LITE0_STAGES[:num_stages]:
            blocks = []
            for i in range(repeats):
                block_stride, block_dilation = (stride if i == 0 else 1), dilation
                if block_stride > 1:
                    if current_stride * block_stride > output_stride:
                        dilation *= block_stride
                        block_stride = 1
                    else:
                        current_stride *= block_stride
                if kind == "ds":
                    blocks.append(
                        DepthwiseSeparableConv(
                            channels, out_channels, kernel, block_stride, block_dilation
                        )
                    )
                else:
                    blocks.append(
                        InvertedResidual(
                            channels, out_channels, kernel, block_stride, block_dilation, expansion
                        )
                    )
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.out_channels = channels
        for m in self.modules():  # timm's _init_weight_goog
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The stem's conv/BN pair (see :mod:`refvos.modeling.surgery`)."""
        return (("conv_stem", "bn1"),)

    def stem(self) -> nn.Sequential:
        """The stem as one module (its conv, BN and ReLU6, shared with this trunk)."""
        return nn.Sequential(self.conv_stem, self.bn1, self.act1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 at output stride 8 up to feature ``stage`` (0-4: the blocks of timm's
    ``out_indices``; 16, 24, 40, 112, 320 channels). Its parameters sit under ``body.``, as in
    the checkpoints trained with timm's ``features_only`` network.
    ``forward(images (B, 3, H, W)) -> (B, out_channels, H / s, W / s)`` (s: 2, 4, 8, 8, 8)."""

    def __init__(self, stage: int = 4) -> None:
        super().__init__()
        if stage not in range(len(FEATURE_BLOCKS)):
            raise ValueError(f"stage must be 0..{len(FEATURE_BLOCKS) - 1}, got {stage!r}")
        self.body = EfficientNetLiteTrunk(num_stages=FEATURE_BLOCKS[stage] + 1, output_stride=8)
        self.out_channels = self.body.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def lite0_timm_keys() -> list[str]:
    """The ``state_dict`` keys of timm's full ``tf_efficientnet_lite0`` classifier, in order."""
    from .meta import on_meta_device

    with on_meta_device():
        trunk = EfficientNetLiteTrunk(output_stride=32)
    return list(trunk.state_dict().keys()) + list(CLASSIFIER_KEYS)
