"""refvos.modeling.head: the released checkpoints' ``classifier`` -- ASPP on the visual features,
multiplied by the projected sentence vector, then a 3x3 conv and the class scores."""

from __future__ import annotations

import torch

from refvos.modeling.head import RefVOSHead


def head(**kw) -> RefVOSHead:
    torch.manual_seed(0)
    return RefVOSHead(in_channels=8, text_dim=6, atrous_rates=(1, 2, 3), channels=16, **kw).eval()


def test_logits_have_the_features_size_and_one_map_per_class():
    h = head(num_classes=2)
    features, text = torch.randn(3, 8, 5, 7), torch.randn(3, 6)
    with torch.no_grad():
        logits = h(features, text)
    assert logits.shape == (3, 2, 5, 7) and torch.isfinite(logits).all()


def test_visual_part_is_computed_once_and_serves_every_sentence():
    h = head()
    features, texts = torch.randn(1, 8, 5, 7), torch.randn(4, 6)
    with torch.no_grad():
        visual = h.visual(features)
        one_pass = [h.decode(visual, t[None]) for t in texts]
        separate = [h(features, t[None]) for t in texts]
    for a, b in zip(one_pass, separate):
        torch.testing.assert_close(a, b)
    # the sentence changes the answer: the fusion multiplies by its projection
    assert not torch.allclose(one_pass[0], one_pass[1])


def test_fusion_is_a_product_with_the_projected_sentence():
    h = head()
    visual = torch.randn(2, 16, 4, 4)
    text = torch.randn(2, 6)
    with torch.no_grad():
        language = h.aspp.embedding_project(text)
        expected = h.aspp.project_final(visual * language[:, :, None, None])
        torch.testing.assert_close(h.aspp.fuse(visual, text), expected)
        # a sentence whose projection is zero leaves the fusion's input at zero: one value everywhere
        h.aspp.embedding_project[0].weight.zero_()
        h.aspp.embedding_project[0].bias.zero_()
        h.aspp.embedding_project[1].bias.zero_()
        flat = h.decode(visual, text)
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat))


def test_the_decode_conv_bn_pair_is_declared_for_folding():
    assert head().conv_bn_pairs() == (("conv", "bn"),)
