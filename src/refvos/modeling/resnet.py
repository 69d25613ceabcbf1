"""ResNet-101 feature extractor in plain PyTorch, with the parameter names of torchvision's ``ResNet``.

RefVOS's image encoder is torchvision's ``resnet101(replace_stride_with_dilation=[False, True,
True])`` (output stride 8) without its pooling and classifier. Importing
``torchvision.models.resnet`` runs torchvision's ``__init__``, which imports ``torchvision.ops``
and through it ``torch._dynamo``: about two seconds of a single ``refvos predict``.
:class:`ResNetFeatures` builds the same network (Bottleneck v1.5: the stride on the 3x3 conv;
torchvision's dilation rule; its initialisation) and computes what torchvision's stem and four
stages compute (tested against it to float tolerance, in eval and training mode). Its
``state_dict`` has torchvision's keys and shapes minus ``fc.*``, so torchvision's ImageNet
weights and the released RefVOS checkpoints load into it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

RESNET101_BLOCKS = (3, 4, 23, 3)
EXPANSION = 4  # a Bottleneck's output channels are 4x its width


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 with a residual: ``(B, C_in, H, W) -> (B, 4 * width,
    H / stride, W / stride)``; ``downsample`` (1x1 conv + BN) maps the input when shapes change."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(
            width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The three conv/BN pairs (see :mod:`refvos.modeling.surgery`); ``downsample`` is a plain
        ``nn.Sequential`` and pairs itself."""
        return (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNetFeatures(nn.Module):
    """The stem and four stages of a Bottleneck ResNet, without pooling and classifier.

    ``blocks``: Bottlenecks per stage (ResNet-101: 3, 4, 23, 3). ``dilate``: for stages 2-4,
    whether the stage's stride 2 is replaced by doubling the dilation (``(False, True, True)``:
    output stride 8, dilations 1, 1, 2, 4). As torchvision's ``_make_layer``, the first block of a
    dilated stage keeps the previous stage's dilation.
    ``forward(images (B, 3, H, W)) -> (B, 2048, H/s, W/s)`` (s: the output stride).
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int] = RESNET101_BLOCKS,
        dilate: tuple[bool, bool, bool] = (False, True, True),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.out_channels = 64
        self._dilation = 1
        self.layer1 = self._make_stage(64, blocks[0], stride=1, dilate=False)
        self.layer2 = self._make_stage(128, blocks[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_stage(256, blocks[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_stage(512, blocks[3], stride=2, dilate=dilate[2])
        for m in self.modules():  # torchvision's initialisation (zero_init_residual=False)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_stage(self, width: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.out_channels != width * EXPANSION:
            downsample = nn.Sequential(
                nn.Conv2d(self.out_channels, width * EXPANSION, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width * EXPANSION),
            )
        layers = [Bottleneck(self.out_channels, width, stride, previous_dilation, downsample)]
        self.out_channels = width * EXPANSION
        layers += [
            Bottleneck(self.out_channels, width, dilation=self._dilation) for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def conv_bn_pairs(self) -> tuple[tuple[str, str], ...]:
        """The stem's conv/BN pair (see :mod:`refvos.modeling.surgery`)."""
        return (("conv1", "bn1"),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
