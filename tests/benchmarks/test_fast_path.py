"""The fast path's graph changes keep the network's function: BatchNorm folding."""

import numpy as np
import torch
from torch import nn

from refvos import Predictor
from refvos.predictor import fold_batchnorm

from ..conftest import make_tiny_model


def test_fold_batchnorm_keeps_the_function_and_leaves_the_model_alone(tiny_model):
    with torch.no_grad():  # non-trivial BN statistics
        for m in tiny_model.segmenter.modules():
            if type(m) is nn.BatchNorm2d:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(tiny_model.segmenter)
    assert any(type(m) is nn.BatchNorm2d for m in tiny_model.segmenter.modules())  # original untouched
    x, t = torch.randn(2, 3, 48, 64), torch.randn(2, tiny_model.config.text_dim)
    with torch.no_grad():
        ref, got = tiny_model.segmenter(x, t), folded(x, t)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    # the head's plain BatchNorm2d pairs are folded; timm's BatchNormAct2d (with its activation) is not
    head = folded.classifier
    assert isinstance(head.bn, nn.Identity) and isinstance(head.aspp.project[1], nn.Identity)


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
    frames = [np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(3)]
    assert len(p.predict_video(frames, "the dog", batch_size=2)) == 3
