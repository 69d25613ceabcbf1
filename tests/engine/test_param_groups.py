"""refvos.engine.param_groups: which parameters train, in which SGD group, and the optimiser."""

from __future__ import annotations

import copy

import pytest
import torch

from refvos.engine.param_groups import build_optimizer, build_param_groups
from refvos.engine.train_config import TrainConfig
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


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_fused_on_the_cpu_and_steps_as_the_per_tensor_loop(name, tmp_path):
    """The fused update is PyTorch's one kernel over all parameters; its steps are the loop's
    (the original's arithmetic) within a rounding."""
    config = TrainConfig(output_dir=str(tmp_path), optimizer=name, weight_decay=1e-4)
    fused_model = make_tiny_model()
    loop_model = copy.deepcopy(fused_model)
    start = copy.deepcopy(fused_model)
    fused = build_optimizer(config, build_param_groups(fused_model, "original"), 0.01)
    assert all(g["fused"] for g in fused.param_groups)
    loop_groups = build_param_groups(loop_model, "original")
    kwargs = {"weight_decay": 1e-4, "foreach": False}
    if name == "sgd":
        loop = torch.optim.SGD(loop_groups, lr=0.01, momentum=config.momentum, **kwargs)
    else:
        loop = torch.optim.AdamW(loop_groups, lr=0.01, **kwargs)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for p, q in zip(fused_model.parameters(), loop_model.parameters()):
            if p.requires_grad:
                p.grad = torch.randn(p.shape, generator=generator)
                q.grad = p.grad.clone()
        fused.step()
        loop.step()
    for p, q in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    moved = [
        not torch.equal(p, q)
        for p, q in zip(fused_model.parameters(), start.parameters())
        if p.requires_grad
    ]
    assert moved and all(moved)
