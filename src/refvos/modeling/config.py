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


# variant -> its backbone
VARIANT_BACKBONES = {"refvos_r101": "resnet101", "refvos_lite": "tf_efficientnet_lite0"}


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
            raise ValueError(
                f"truncation must be one of {list(TRUNCATIONS)}, got {self.truncation!r}"
            )

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

    def validate(self) -> RefVOSConfig:
        """Check every field's type and range (a checkpoint's config is untrusted: 100,000 BERT
        layers or a string ``head_channels`` must be refused before anything is built).
        Raises ``ValueError`` naming the field."""
        variants = VARIANT_BACKBONES
        if not isinstance(self.variant, str) or self.variant not in variants:
            raise ValueError(f"variant must be one of {sorted(variants)}, got {self.variant!r}")
        if self.backbone != variants[self.variant]:
            raise ValueError(
                f"backbone of {self.variant} must be {variants[self.variant]!r}, got {self.backbone!r}"
            )
        _int_in("backbone_channels", self.backbone_channels, 1, 8192)
        _int_in("max_tokens", self.max_tokens, 1, 512)
        _int_in("num_classes", self.num_classes, 2, 2)
        _int_in("head_channels", self.head_channels, 1, 2048)
        _int_in("output_stride", self.output_stride, 8, 8)
        _int_in("backbone_stage", self.backbone_stage, 0, 4)
        if self.input_size is not None:
            _int_in("input_size", self.input_size, 16, 8192)
        if not isinstance(self.atrous_rates, (tuple, list)) or len(self.atrous_rates) != 3:
            raise ValueError(f"atrous_rates must be 3 integers, got {self.atrous_rates!r}")
        for r in self.atrous_rates:
            _int_in("atrous_rates", r, 1, 256)
        t = self.text_config
        if not isinstance(t, dict) or not all(isinstance(k, str) for k in t):
            raise ValueError("text_config must be a dict of BertConfig fields")
        unknown = sorted(set(t) - set(BERT_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"text_config has unknown fields {unknown[:5]}")
        t = {**BERT_BASE_UNCASED, **t}
        _int_in("text_config.vocab_size", t["vocab_size"], 1, 1_000_000)
        _int_in("text_config.hidden_size", t["hidden_size"], 1, 4096)
        _int_in("text_config.num_hidden_layers", t["num_hidden_layers"], 1, 48)
        _int_in("text_config.num_attention_heads", t["num_attention_heads"], 1, 128)
        _int_in("text_config.intermediate_size", t["intermediate_size"], 1, 16384)
        _int_in("text_config.max_position_embeddings", t["max_position_embeddings"], 1, 8192)
        _int_in("text_config.type_vocab_size", t["type_vocab_size"], 1, 16)
        _int_in("text_config.pad_token_id", t["pad_token_id"], 0, t["vocab_size"] - 1)
        if t["hidden_size"] % t["num_attention_heads"]:
            raise ValueError("text_config.hidden_size must be a multiple of num_attention_heads")
        if self.max_tokens > t["max_position_embeddings"]:
            raise ValueError("max_tokens must not exceed text_config.max_position_embeddings")
        if t["hidden_act"] not in ("gelu", "relu", "gelu_new", "gelu_python", "silu", "tanh"):
            raise ValueError(
                f"text_config.hidden_act {t['hidden_act']!r} is not a known activation"
            )
        for name in ("layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob"):
            v = t[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ValueError(f"text_config.{name} must be a number in [0, 1), got {v!r}")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RefVOSConfig:
        if not isinstance(d, dict) or not all(isinstance(k, str) for k in d):
            raise ValueError(f"config must be a dict of fields, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RefVOSConfig fields: {sorted(unknown)}")
        missing = sorted(
            {
                f.name
                for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            }
            - set(d)
        )
        if missing:
            raise ValueError(f"config lacks fields {missing}")
        d = dict(d)
        if isinstance(d.get("atrous_rates"), (list, tuple)):
            d["atrous_rates"] = tuple(d["atrous_rates"])
        return cls(**d)


def _int_in(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}"[:200])
