"""refvos.modeling.text_encoder: BERT built from a config, its config read back from a state
dict's shapes, strict loading, the [CLS] sentence vector."""

from __future__ import annotations

import pytest
import torch

from refvos.errors import CheckpointError
from refvos.modeling.text_encoder import (
    build_text_encoder,
    cls_embedding,
    infer_text_config,
    load_text_state_dict,
)
from tests.helpers import TINY_TEXT_CONFIG


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_text_encoder(TINY_TEXT_CONFIG).eval()


def test_config_is_read_back_from_the_state_dict(encoder):
    cfg = infer_text_config(encoder.state_dict())
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    ):
        assert cfg[key] == {**cfg, **TINY_TEXT_CONFIG}[key], key
    assert cfg["num_hidden_layers"] == TINY_TEXT_CONFIG["num_hidden_layers"]
    with pytest.raises(CheckpointError, match="not a BertModel state dict"):
        infer_text_config({"encoder.layer.0.output.dense.weight": torch.zeros(2, 2)})


def test_initialisation_is_bert_s(encoder):
    emb = encoder.embeddings.word_embeddings
    assert emb.weight[emb.padding_idx].abs().sum() == 0  # the padding embedding is zero
    assert 0.01 < float(emb.weight.detach().std()) < 0.03  # normal(0, initializer_range 0.02)
    linear = encoder.encoder.layer[0].intermediate.dense
    assert linear.bias.abs().sum() == 0


def test_strict_loading_round_trips_and_refuses_missing_keys(encoder):
    other = build_text_encoder(TINY_TEXT_CONFIG).eval()
    load_text_state_dict(other, encoder.state_dict(), "enc.pth")
    ids = torch.tensor([[101, 1996, 3899, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    with torch.no_grad():
        a, b = cls_embedding(encoder, ids, mask), cls_embedding(other, ids, mask)
    torch.testing.assert_close(a, b)
    assert a.shape == (1, TINY_TEXT_CONFIG["hidden_size"])
    partial = {k: v for k, v in encoder.state_dict().items() if not k.startswith("pooler")}
    with pytest.raises(CheckpointError, match="enc.pth"):
        load_text_state_dict(other, partial, "enc.pth")


def test_cls_vector_depends_on_the_sentence(encoder):
    mask = torch.ones(2, 4, dtype=torch.long)
    ids = torch.tensor([[101, 1996, 3899, 102], [101, 1996, 4937, 102]])
    with torch.no_grad():
        v = cls_embedding(encoder, ids, mask)
    assert not torch.allclose(v[0], v[1])
