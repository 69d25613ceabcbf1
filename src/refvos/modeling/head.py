"""The RefVOS head: DeepLabv3's ASPP with the multiplicative language fusion inside.

Module and parameter names match the ``classifier.*`` keys of the released checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# how an AtrousConv2d computes in eval mode: "conv", one dilated convolution; "taps", one 1x1
# convolution per kernel tap and the sum of their shifted outputs (see atrous_by_taps)
ATROUS_FORMS = ("conv", "taps")


def atrous_by_taps(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    dilation: tuple[int, int],
) -> torch.Tensor:
    """A 3x3 convolution with ``dilation = (d_h, d_w)``, padding ``dilation``, stride 1, computed
    tap by tap: for each of the nine taps a 1x1 convolution (a matrix product) with that tap's
    weights, ``(B, C_in, H, W) -> (B, C_out, H, W)``, shifted by the tap's offset with zeros
    where the offset leaves the map, and the nine summed: ``(B, C_in, H, W) -> (B, C_out, H,
    W)``. The same sum as the convolution, added in another order. It does all nine taps'
    products everywhere (a direct convolution may skip the taps that fall in the padding), but as
    matrix products, which some kernels run far faster than a convolution of large dilation
    (oneDNN's AMX bf16 convolution on the ASPP's rates 12-36, for one). Run eagerly, it leaves out
    the taps whose offset reaches past the map everywhere (they only ever meet zeros); traced, it
    keeps all nine and slices with constant bounds only, so an exported graph serves every input
    size."""
    d_h, d_w = dilation
    h, w = x.shape[-2:]
    every_size = torch.jit.is_tracing()
    out = None
    for i in range(3):
        for j in range(3):
            dy, dx = (i - 1) * d_h, (j - 1) * d_w
            if not every_size and (abs(dy) >= h or abs(dx) >= w):
                continue  # this tap multiplies the zero padding only
            part = F.conv2d(x, weight[:, :, i : i + 1, j : j + 1])
            # out[y, x] += part[y + dy, x + dx], zero outside: pad by the dilation, slice the window
            part = F.pad(part, (d_w, d_w, d_h, d_h))[
                ..., d_h + dy : (dy - d_h) or None, d_w + dx : (dx - d_w) or None
            ]
            out = part if out is None else out + part
    return out if bias is None else out + bias[:, None, None]


class AtrousConv2d(nn.Conv2d):
    """3x3 atrous convolution (padding = dilation, stride 1), ``(B, C_in, H, W) -> (B, C_out, H,
    W)``.

    In training it leaves out the kernel rows (columns) whose taps reach past the feature map at
    every position (dilation >= H, resp. W: they only ever multiply the zero padding). The result
    and the gradients are the same (those taps' gradient is exactly zero); the backward pass skips
    them. oneDNN's forward already skips such taps, but its weight gradient for them falls back to
    a slow GEMM path on CPU: the ASPP's rates 24 and 36 on the 16x16 features of a 128x128 crop,
    or rate 36 on a 256x256 crop's 32x32.

    In eval mode (and while traced, compiled or exported) it computes as its ``form`` says
    (:data:`ATROUS_FORMS`): ``"conv"`` (the default), a plain ``Conv2d``; ``"taps"``,
    :func:`atrous_by_taps`. Both serve every input size. Inference copies get ``"taps"`` from
    :func:`refvos.modeling.surgery.with_atrous_form` where ``auto`` measures it faster."""

    form: str = "conv"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or torch.jit.is_tracing() or torch.compiler.is_compiling():
            if self.form == "taps":
                return atrous_by_taps(x, self.weight, self.bias, self.dilation)
            return super().forward(x)
        h, w = x.shape[-2:]
        d_h, d_w = self.dilation
        rows, cols = d_h >= h, d_w >= w
        if not (rows or cols):
            return super().forward(x)
        weight = self.weight[:, :, 1:2] if rows else self.weight
        weight = weight[:, :, :, 1:2] if cols else weight
        padding = (0 if rows else self.padding[0], 0 if cols else self.padding[1])
        return F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ASPPConv(nn.Sequential):
    """3x3 atrous conv (no bias), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            AtrousConv2d(
                in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class ASPPPooling(nn.Sequential):
    """Image-level pooling branch: global average pool, 1x1 conv, BN, ReLU, upsample back."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The conv/BN pair its forward applies in sequence (see :mod:`refvos.modeling.surgery`)."""
        return (("1", "2"),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class LanguageFusedASPP(nn.Module):
    """ASPP whose projected visual features are multiplied by the projected sentence vector.

    ``forward(features (B, C, h, w), text (B, D)) -> (B, 256, h, w)``.
    """

    def __init__(
        self,
        in_channels: int,
        text_dim: int,
        atrous_rates: tuple[int, int, int],
        channels: int = 256,
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
            )
        ]
        branches += [ASPPConv(in_channels, channels, rate) for rate in atrous_rates]
        branches.append(ASPPPooling(in_channels, channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )
        self.embedding_project = nn.Sequential(
            nn.Linear(text_dim, channels), nn.BatchNorm1d(channels)
        )
        self.project_final = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def visual(self, features: torch.Tensor) -> torch.Tensor:
        """The sentence-independent part: ``(B, C, h, w) -> (B, 256, h, w)`` (ASPP + projection)."""
        return self.project(torch.cat([conv(features) for conv in self.convs], dim=1))

    def fuse(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Multiply ``visual (B, 256, h, w)`` by the projected sentence vectors ``text (B, D)``."""
        language = self.embedding_project(text)  # (B, 256)
        return self.project_final(visual * language[:, :, None, None])

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.visual(features), text)


class RefVOSHead(nn.Module):
    """``classifier`` of the released models: fused ASPP, 3x3 conv, BN, ReLU, 1x1 conv to classes.

    ``forward(features (B, C, h, w), text (B, D)) -> logits (B, num_classes, h, w)``.
    """

    def __init__(
        self,
        in_channels: int,
        text_dim: int,
        num_classes: int = 2,
        atrous_rates: tuple[int, int, int] = (12, 24, 36),
        channels: int = 256,
    ) -> None:
        super().__init__()
        self.aspp = LanguageFusedASPP(in_channels, text_dim, atrous_rates, channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.conv_2 = nn.Conv2d(channels, num_classes, 1)

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The conv/BN pair :meth:`decode` applies in sequence (see :mod:`refvos.modeling.surgery`)."""
        return (("conv", "bn"),)

    def visual(self, features: torch.Tensor) -> torch.Tensor:
        """The sentence-independent part ``(B, C, h, w) -> (B, 256, h, w)``; computed once per
        image, it serves every sentence about that image (see :meth:`decode`)."""
        return self.aspp.visual(features)

    def decode(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, h, w)`` from :meth:`visual`'s output ``(B, 256, h, w)`` and
        sentence vectors ``(B, D)``."""
        x = self.aspp.fuse(visual, text)
        x = F.relu(self.bn(self.conv(x)))
        return self.conv_2(x)

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.decode(self.visual(features), text)
