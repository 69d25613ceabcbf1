"""refvos.modeling.head: the released checkpoints' ``classifier`` -- ASPP on the visual features,
multiplied by the projected sentence vector, then a 3x3 conv and the class scores."""

from __future__ import annotations

import pytest
import torch

from refvos.modeling.head import RefVOSHead
from tests.helpers.models import record_conv_kernels


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


def _atrous_pair(dilation: int):
    from refvos.modeling.head import AtrousConv2d

    torch.manual_seed(0)
    conv = AtrousConv2d(4, 3, 3, padding=dilation, dilation=dilation, bias=False)
    plain = torch.nn.Conv2d(4, 3, 3, padding=dilation, dilation=dilation, bias=False)
    plain.load_state_dict(conv.state_dict())
    return conv, plain


@pytest.mark.parametrize(
    "size",
    [(6, 6), (5, 9), (9, 5), (7, 7), (12, 12)],  # dilation 6: both / one / no sides past the map
)
def test_atrous_conv_in_training_equals_the_full_kernel_in_output_and_gradients(size):
    conv, plain = _atrous_pair(6)
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    conv, plain = conv.double().train(), plain.double().train()
    for m in (conv, plain):
        m(x).square().sum().backward()
    torch.testing.assert_close(conv(x), plain(x))
    torch.testing.assert_close(conv.weight.grad, plain.weight.grad)
    h, w = size
    dropped = torch.zeros(3, 3, dtype=torch.bool)
    if h <= 6:
        dropped[[0, 2], :] = True
    if w <= 6:
        dropped[:, [0, 2]] = True
    assert (conv.weight.grad[:, :, dropped] == 0).all()
    assert (conv.weight.grad[:, :, ~dropped] != 0).all()


def test_atrous_conv_runs_the_whole_kernel_when_traced_so_the_graph_serves_every_size():
    conv, plain = _atrous_pair(6)
    conv.train()
    traced = torch.jit.trace(conv, torch.randn(1, 4, 6, 6))  # a size whose outer taps drop
    x = torch.randn(1, 4, 16, 16)  # ... and one where they matter
    torch.testing.assert_close(traced(x), plain(x))


@pytest.mark.parametrize(
    "size, kernel, mode",
    [
        ((6, 6), (1, 1), "train"),
        ((5, 9), (1, 3), "train"),
        ((7, 7), (3, 3), "train"),
        ((6, 6), (3, 3), "eval"),
    ],
)
def test_atrous_conv_skips_the_taps_past_the_map_only_in_training(monkeypatch, size, kernel, mode):
    conv, _ = _atrous_pair(6)
    getattr(conv, mode)()
    seen = record_conv_kernels(monkeypatch)
    conv(torch.randn(1, 4, *size))
    assert seen == [kernel]


@pytest.mark.parametrize(
    ("size", "dilation", "bias"),
    [
        ((5, 7), (1, 1), False),
        ((5, 7), (2, 3), True),
        ((4, 4), (6, 6), True),
        ((9, 3), (4, 2), False),
    ],
)
def test_atrous_by_taps_is_the_dilated_convolution(size, dilation, bias):
    from refvos.modeling.head import atrous_by_taps

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, *size, generator=g, dtype=torch.float64)
    w = torch.randn(5, 8, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64) if bias else None
    expected = torch.nn.functional.conv2d(x, w, b, 1, dilation, dilation)
    torch.testing.assert_close(atrous_by_taps(x, w, b, dilation), expected)


def test_atrous_by_taps_leaves_out_the_taps_past_the_map_when_run_eagerly(monkeypatch):
    from refvos.modeling import head as head_module

    calls = []
    conv2d = torch.nn.functional.conv2d
    monkeypatch.setattr(
        head_module.F, "conv2d", lambda *a, **k: calls.append(a[1].shape) or conv2d(*a, **k)
    )
    x, w = torch.randn(1, 4, 5, 9), torch.randn(3, 4, 3, 3)
    head_module.atrous_by_taps(x, w, None, (6, 6))  # rows past the 5-high map: 3 taps of 9
    assert len(calls) == 3
    calls.clear()
    torch.jit.trace(lambda t: head_module.atrous_by_taps(t, w, None, (6, 6)), x, check_trace=False)
    assert len(calls) == 9  # traced: all nine, so the graph serves larger maps too


def test_the_taps_form_runs_in_eval_only_and_its_traced_graph_serves_every_size(monkeypatch):
    from refvos.modeling import head as head_module

    conv, plain = _atrous_pair(6)
    conv.form = "taps"
    calls = []
    real = head_module.atrous_by_taps
    monkeypatch.setattr(
        head_module, "atrous_by_taps", lambda *a: calls.append(a[0].shape) or real(*a)
    )
    x = torch.randn(1, 4, 16, 16)
    conv.train()
    conv(x)
    assert calls == []  # training keeps the convolution (and its trimmed kernel)
    conv.eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), plain(x))
        assert calls == [x.shape]
        traced = torch.jit.trace(conv, torch.randn(1, 4, 6, 6))  # outer taps past the map
        for size in ((16, 16), (5, 23)):
            y = torch.randn(1, 4, *size)
            torch.testing.assert_close(traced(y), plain(y))
