"""refvos.modeling.config: RefVOSConfig round-trips through a dict, and a checkpoint's config
(untrusted) is checked field by field before anything is built."""

from __future__ import annotations

import pytest

from refvos.modeling.config import BERT_BASE_UNCASED, RefVOSConfig
from tests.helpers import TINY_TEXT_CONFIG


def lite(**fields) -> RefVOSConfig:
    return RefVOSConfig(
        "refvos_lite", "tf_efficientnet_lite0", 320, text_config=dict(TINY_TEXT_CONFIG), **fields
    )


def test_round_trip_through_a_dict_keeps_every_field():
    cfg = lite(max_tokens=10, truncation="original", input_size=320, atrous_rates=(6, 12, 18))
    d = cfg.to_dict()
    assert d["atrous_rates"] == [6, 12, 18]  # JSON-able
    back = RefVOSConfig.from_dict(d)
    assert back == cfg and back.atrous_rates == (6, 12, 18)
    assert back.legacy_truncation and back.text_dim == TINY_TEXT_CONFIG["hidden_size"]
    assert (
        RefVOSConfig("refvos_r101", "resnet101", 2048).text_dim
        == BERT_BASE_UNCASED["hidden_size"]
        == 768
    )


def test_from_dict_names_unknown_and_missing_fields():
    with pytest.raises(ValueError, match=r"unknown RefVOSConfig fields: \['colour'\]"):
        RefVOSConfig.from_dict({**lite().to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match=r"config lacks fields \['backbone_channels'\]"):
        RefVOSConfig.from_dict({"variant": "refvos_lite", "backbone": "tf_efficientnet_lite0"})
    with pytest.raises(ValueError, match="config must be a dict"):
        RefVOSConfig.from_dict(["variant"])
    with pytest.raises(ValueError, match="truncation must be one of"):
        lite(truncation="middle")


@pytest.mark.parametrize(
    "change, words",
    [
        ({"variant": "refvos_r50"}, "variant must be one of"),
        ({"backbone": "resnet101"}, "backbone of refvos_lite must be 'tf_efficientnet_lite0'"),
        ({"head_channels": "256"}, "head_channels"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"input_size": 8}, "input_size"),
        ({"atrous_rates": (12, 24)}, "atrous_rates must be 3 integers"),
        (
            {"text_config": {**TINY_TEXT_CONFIG, "num_hidden_layers": 100_000}},
            "text_config.num_hidden_layers",
        ),
        ({"text_config": {**TINY_TEXT_CONFIG, "flavour": 1}}, "text_config has unknown fields"),
        (
            {"text_config": {**TINY_TEXT_CONFIG, "num_attention_heads": 3}},
            "multiple of num_attention_heads",
        ),
        (
            {"text_config": {**TINY_TEXT_CONFIG, "hidden_act": "__import__"}},
            "not a known activation",
        ),
        ({"text_config": {**TINY_TEXT_CONFIG, "hidden_dropout_prob": 1.5}}, "hidden_dropout_prob"),
        ({"max_tokens": 600}, "max_tokens"),
    ],
)
def test_validate_refuses_each_bad_field_by_name(change, words):
    assert lite().validate() == lite()
    fields = {**lite().to_dict(), **change}
    cfg = RefVOSConfig(**{k: v for k, v in fields.items()})
    with pytest.raises(ValueError, match=words):
        cfg.validate()
