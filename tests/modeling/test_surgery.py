"""Graph surgery (refvos.modeling.surgery): BatchNorm folding keeps the function and finds every
declared conv/BN pair; dropout rate; the backbone cut."""

import numpy as np
import pytest
import torch
from torch import nn

from refvos import Predictor
from refvos.errors import InputError
from refvos.modeling.head import ASPPPooling, RefVOSHead
from refvos.modeling.surgery import declared_pairs, fold_batchnorm, set_dropout
from tests.helpers import make_tiny_model


def test_fold_batchnorm_keeps_the_function_and_leaves_the_model_alone(tiny_model):
    with torch.no_grad():  # non-trivial BN statistics
        for m in tiny_model.segmenter.modules():
            if type(m) is nn.BatchNorm2d:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(tiny_model.segmenter)
    assert any(
        type(m) is nn.BatchNorm2d for m in tiny_model.segmenter.modules()
    )  # original untouched
    x, t = torch.randn(2, 3, 48, 64), torch.randn(2, tiny_model.config.text_dim)
    with torch.no_grad():
        ref, got = tiny_model.segmenter(x, t), folded(x, t)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    # every pair is folded: the head's and the EfficientNet-Lite0 backbone's (stem and blocks)
    head = folded.classifier
    assert isinstance(head.bn, nn.Identity) and isinstance(head.aspp.project[1], nn.Identity)
    assert not any(type(m) is nn.BatchNorm2d for m in folded.modules())


def test_r101_has_no_batchnorm_left_after_folding(r101_model):
    folded = fold_batchnorm(r101_model.segmenter)
    assert not any(type(m) is nn.BatchNorm2d for m in folded.modules())
    x, t = torch.randn(1, 3, 64, 64), torch.randn(1, 768)
    with torch.no_grad():
        ref, got = r101_model.segmenter(x, t), folded(x, t)
    assert (ref.argmax(1) == got.argmax(1)).float().mean() > 0.99


def test_predictor_folds_only_below_fp32():
    model = make_tiny_model().eval()
    fp32 = Predictor(model, device="cpu", precision="fp32")
    assert fp32.segmenter is fp32.model.segmenter
    p = Predictor(model, device="cpu", precision="bf16")
    assert p.segmenter is not p.model.segmenter
    frames = [
        np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(3)
    ]
    assert len(p.predict_video(frames, "the dog", batch_size=2)) == 3


def test_every_declared_pair_is_folded_and_a_renamed_layer_is_an_error(r101_model, tiny_model):
    for model in (r101_model, tiny_model):
        folded = fold_batchnorm(model.segmenter)
        pairs = 0
        for name, parent in model.segmenter.named_modules():
            for _, bn in declared_pairs(parent):
                pairs += 1
                folded_parent = folded.get_submodule(name)
                if type(parent._modules[bn]) is nn.BatchNorm2d:
                    assert isinstance(folded_parent._modules[bn], nn.Identity), f"{name}.{bn}"
        assert pairs > 0
    # the r101 network: the stem, 33 Bottlenecks of 3, 4 downsample branches, and the head's
    # 1x1 branch, 3 atrous branches, pooling, projection, final projection and its own conv/bn
    assert sum(len(declared_pairs(m)) for m in r101_model.segmenter.modules()) == 1 + 33 * 3 + 4 + 8
    assert declared_pairs(RefVOSHead(8, 4, channels=8)) == (("conv", "bn"),)
    assert declared_pairs(ASPPPooling(8, 8)) == (("1", "2"),)

    class Renamed(RefVOSHead):  # a head whose BN was renamed without updating its declaration
        def __init__(self):
            super().__init__(8, 4, channels=8)
            self.norm = self.bn
            del self.bn

    with pytest.raises(InputError, match=r"RefVOSHead|Renamed.*\('conv', 'bn'\)"):
        fold_batchnorm(Renamed())


def test_set_dropout_zero_removes_the_dropout_and_keeps_the_output(tiny_model):
    head = tiny_model.segmenter.classifier
    set_dropout(head, 0.2)
    assert [m.p for m in head.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    set_dropout(head, 0.0)
    assert not any(isinstance(m, nn.Dropout) for m in head.modules())
    head.train()
    x, text = (
        torch.randn(2, head.aspp.convs[0][0].in_channels, 6, 6),
        torch.randn(2, head.aspp.embedding_project[0].in_features),
    )
    torch.manual_seed(0)
    a = head(x, text)
    torch.manual_seed(1)
    assert torch.equal(a, head(x, text))  # nothing random left in training mode


def test_with_atrous_form_shares_the_weights_and_leaves_the_network_alone(tiny_model):
    from refvos.modeling.head import AtrousConv2d
    from refvos.modeling.surgery import with_atrous_form

    seg = tiny_model.segmenter.eval()
    taps = with_atrous_form(seg, "taps")
    forms = [m.form for m in taps.modules() if isinstance(m, AtrousConv2d)]
    assert forms and set(forms) == {"taps"}
    assert {m.form for m in seg.modules() if isinstance(m, AtrousConv2d)} == {"conv"}
    assert all(a is b for a, b in zip(seg.parameters(), taps.parameters()))
    assert all(a is b for a, b in zip(seg.buffers(), taps.buffers()))
    assert with_atrous_form(seg, "conv") is seg and with_atrous_form(taps, "taps") is taps
    x = torch.randn(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(taps.encode(x), seg.encode(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(InputError, match="atrous form"):
        with_atrous_form(seg, "winograd")
