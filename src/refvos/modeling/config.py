"""Configuration of a RefVOS network, kept apart from the modelling code.

A :class:`RefVOSConfig` is stored inside refvos checkpoints (as a plain dict) so that a
checkpoint rebuilds its own network without any download.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..tokenization import TRUNCATIONS

# The BertConfig fields that define a BertModel's shapes and behaviour.
BERT_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "hidden_act",
    "layer_norm_eps",
    "pad_token_id",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)

BERT_BASE_UNCASED: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}

MINILM_L6_H384: dict[str, Any] = {
    **BERT_BASE_UNCASED,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "intermediate_size": 1536,
}


@dataclass
class RefVOSConfig:
    """Everything needed to rebuild a RefVOS network.

    Attributes:
        variant: registry name of the builder (``refvos_r101``, ``refvos_lite``).
        backbone: ``resnet101`` or ``tf_efficientnet_lite0``.
        backbone_channels: channels of the backbone's last feature map (2048, 320).
        text_config: BertConfig fields of the sentence encoder (see ``BERT_CONFIG_KEYS``).
        max_tokens: token limit of the expressions (20 for RefCOCO, 10 for A2D / DAVIS).
        num_classes: output classes (2: background, referent).
        atrous_rates: ASPP dilation rates.
        head_channels: width of the ASPP / fusion features.
        output_stride: backbone output stride.
        backbone_stage: for ``refvos_lite``, the EfficientNet stage (0-4) whose features feed the
            head; 4, the last, by default. Earlier stages are cheaper and keep more colour and
            shape detail (the offline demo uses stage 2).
        truncation: how expressions longer than ``max_tokens`` were cut in training, and so how
            they are cut at inference (:data:`refvos.tokenization.TRUNCATIONS`): ``"original"``
            (the authors' code: the id list is sliced after [CLS] / [SEP] are added) or
            ``"standard"`` (keeps [SEP]; what refvos checkpoints without this field used).
        input_size: the long side, in pixels, of the images the network was trained and
            evaluated at (``refvos train`` records it); :class:`~refvos.predictor.Predictor`,
            ``refvos predict`` and ``refvos serve`` scale larger pictures down to it by default.
            ``None``: the images' own size (the released checkpoints, evaluated at native
            resolution as the original's test.py).
    """

    variant: str
    backbone: str
    backbone_channels: int
    text_config: dict[str, Any] = field(default_factory=lambda: dict(BERT_BASE_UNCASED))
    max_tokens: int = 20
    num_classes: int = 2
    atrous_rates: tuple[int, int, int] = (12, 24, 36)
    head_channels: int = 256
    output_stride: int = 8
    backbone_stage: int = 4
    truncation: str = "standard"
    input_size: int | None = None

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {list(TRUNCATIONS)}, got {self.truncation!r}")

    @property
    def legacy_truncation(self) -> bool:
        """True when expressions are cut as the original code cut them."""
        return self.truncation == "original"

    @property
    def text_dim(self) -> int:
        """Width of the sentence vector (768 for BERT-base, 384 for MiniLM)."""
        return int(self.text_config["hidden_size"])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["atrous_rates"] = list(self.atrous_rates)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RefVOSConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RefVOSConfig fields: {sorted(unknown)}")
        d = dict(d)
        if "atrous_rates" in d:
            d["atrous_rates"] = tuple(d["atrous_rates"])
        return cls(**d)
