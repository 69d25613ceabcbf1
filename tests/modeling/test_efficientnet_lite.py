"""The plain-PyTorch EfficientNet-Lite0 (refvos.modeling.efficientnet_lite) against timm's
``tf_efficientnet_lite0``: the same parameter names and shapes, the same outputs at every feature
stage (eval and training mode, odd input sizes that exercise TensorFlow's "same" padding), and
the shipped ImageNet weights loaded into either give the same features."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from refvos.modeling.backbone import efficientnet_lite0_os8, lite0_imagenet_state_dict
from refvos.modeling.efficientnet_lite import EfficientNetLiteTrunk, SamePadConv2d, lite0_timm_keys

timm = pytest.importorskip("timm")


def _timm_features(stage: int) -> torch.nn.Module:
    return timm.create_model(
        "tf_efficientnet_lite0",
        pretrained=False,
        features_only=True,
        output_stride=8,
        out_indices=(stage,),
    )


def _randomise_batchnorm(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine parameters (a fresh network has mean 0, var 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t, lo, hi in (
                    (m.running_mean, -0.5, 0.5),
                    (m.running_var, 0.5, 2.0),
                    (m.weight, 0.5, 1.5),
                    (m.bias, -0.2, 0.2),
                ):
                    t.copy_(torch.empty(t.shape).uniform_(lo, hi, generator=g))


def test_full_trunk_has_timms_keys_and_shapes_in_order():
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert lite0_timm_keys() == list(full.state_dict().keys())
    ours = EfficientNetLiteTrunk(output_stride=32).state_dict()
    theirs = full.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: theirs[k].shape for k in ours}


@pytest.mark.parametrize("stage", [0, 1, 2, 3, 4])
def test_features_equal_timms_at_every_stage(stage):
    theirs = _timm_features(stage)
    torch.manual_seed(stage)
    ours = efficientnet_lite0_os8(None, stage)
    _randomise_batchnorm(theirs, stage)
    # timm's features_only network keeps every block; ours stops at the stage's last one
    ours.body.load_state_dict(
        {k: v for k, v in theirs.state_dict().items() if k in ours.body.state_dict()}
    )
    assert ours.out_channels == theirs.feature_info.channels()[-1]
    x = torch.randn(2, 3, 67, 93)  # odd sizes: asymmetric "same" padding on the stride-2 convs
    with torch.no_grad():
        ref, got = theirs.eval()(x)[-1], ours.eval()(x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_training_mode_matches_timms_outputs_and_running_statistics():
    theirs, ours = _timm_features(4).train(), efficientnet_lite0_os8(None, 4).train()
    ours.body.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 64, 80)
    torch.testing.assert_close(ours(x), theirs(x)[-1], rtol=1e-4, atol=1e-4)
    for k, v in theirs.state_dict().items():
        if "running" in k:
            torch.testing.assert_close(ours.body.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_shipped_imagenet_weights_give_timms_features():
    theirs = _timm_features(4).eval()
    named = lite0_imagenet_state_dict()
    theirs.load_state_dict({k: named[k] for k in theirs.state_dict()})
    ours = efficientnet_lite0_os8("imagenet", 4).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x)[-1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "before", "after"),
    [
        (7, 3, 2, 1, 1, 1),
        (8, 3, 2, 1, 0, 1),
        (9, 5, 2, 1, 2, 2),
        (10, 5, 2, 1, 1, 2),
        (12, 2, 1, 1, 0, 1),
        (10, 3, 1, 2, 2, 2),
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, dilation, before, after):
    """Output ``ceil(size / stride)``; an odd padding puts its extra pixel after (TensorFlow's
    "same"; the pads are worked out by hand)."""
    conv = SamePadConv2d(1, 1, kernel, stride, dilation)
    with torch.no_grad():
        conv.weight.uniform_(-1.0, 1.0)
    x = torch.randn(1, 1, size, size)
    out = conv(x)
    assert out.shape[-2:] == (-(-size // stride),) * 2
    ref = F.conv2d(
        F.pad(x, [before, after, before, after]), conv.weight, stride=stride, dilation=dilation
    )
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("output_stride", [16, 32])
def test_other_output_strides_equal_timms(output_stride):
    theirs = timm.create_model(
        "tf_efficientnet_lite0",
        pretrained=False,
        features_only=True,
        output_stride=output_stride,
        out_indices=(4,),
    ).eval()
    ours = EfficientNetLiteTrunk(output_stride=output_stride).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x)[-1], rtol=1e-4, atol=1e-4)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="output_stride"):
        EfficientNetLiteTrunk(output_stride=4)
    with pytest.raises(ValueError, match="num_stages"):
        EfficientNetLiteTrunk(num_stages=8)
    with pytest.raises(ValueError, match="stage"):
        efficientnet_lite0_os8(None, 5)
