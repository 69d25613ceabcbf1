"""refvos.engine.param_groups: which parameters train, in which SGD group."""

from __future__ import annotations

from refvos.engine.param_groups import build_param_groups
from tests.helpers import TINY_TEXT_CONFIG, make_tiny_model


def test_param_groups_original_full_frozen():
    model = make_tiny_model()
    # a 4-layer encoder: layers 0-1 train, 2-3 and the embeddings are frozen
    from refvos.modeling import build_model

    model = build_model(
        "refvos_lite",
        backbone_weights=None,
        text_encoder=None,
        text_config={**TINY_TEXT_CONFIG, "num_hidden_layers": 4},
    )
    groups = build_param_groups(model, "original")
    names = [g["name"] for g in groups]
    assert names == ["backbone", "head", "text_layers", "text_pooler"]
    enc = model.text_encoder
    layer_ids = {id(p) for g in groups if g["name"] == "text_layers" for p in g["params"]}
    assert layer_ids == {id(p) for layer in enc.encoder.layer[:2] for p in layer.parameters()}
    assert not any(p.requires_grad for p in enc.embeddings.parameters())
    assert not any(p.requires_grad for p in enc.encoder.layer[2:].parameters())
    assert all(p.requires_grad for p in enc.pooler.parameters())

    groups = build_param_groups(model, "frozen")
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert not any(p.requires_grad for p in enc.parameters())
    groups = build_param_groups(model, "full")
    assert [g["name"] for g in groups] == ["backbone", "head", "text_encoder"]
    assert all(p.requires_grad for p in enc.parameters())
