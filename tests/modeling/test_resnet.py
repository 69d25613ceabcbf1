"""refvos's plain-PyTorch ResNet-101 (OS 8) against torchvision's: same keys, same layers, same outputs."""

import pytest
import torch
from torch import nn

from refvos.modeling.resnet import RESNET101_BLOCKS, Bottleneck, ResNetFeatures
from refvos.modeling.surgery import declared_pairs, fold_batchnorm


@pytest.fixture(scope="module")
def pair():
    """(torchvision's resnet101 at OS 8 with random weights and non-trivial BN statistics, ours
    with its weights copied in)."""
    from torchvision.models import resnet101

    torch.manual_seed(0)
    ref = resnet101(weights=None, replace_stride_with_dilation=[False, True, True])
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    ours = ResNetFeatures(RESNET101_BLOCKS, dilate=(False, True, True))
    ours.load_state_dict(
        {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}, strict=True
    )
    return ref, ours


def _torchvision_features(resnet: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    return resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(x))))


def test_state_dict_keys_and_shapes_are_torchvisions_without_the_classifier(pair):
    ref, ours = pair
    expected = [(k, v.shape) for k, v in ref.state_dict().items() if not k.startswith("fc.")]
    assert [(k, v.shape) for k, v in ResNetFeatures().state_dict().items()] == expected
    assert ours.out_channels == 2048


def test_every_convolution_has_torchvisions_stride_padding_and_dilation(pair):
    ref, ours = pair
    geometry = [
        (n, m.stride, m.padding, m.dilation)
        for n, m in ref.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    assert [
        (n, m.stride, m.padding, m.dilation)
        for n, m in ours.named_modules()
        if isinstance(m, nn.Conv2d)
    ] == geometry
    # output stride 8: dilation 2 in layer3 and 4 in layer4, each first block keeping the previous one
    assert [b.conv2.dilation[0] for b in ours.layer3] == [1] + [2] * 22
    assert [b.conv2.dilation[0] for b in ours.layer4] == [2, 4, 4]


def test_initialisation_follows_torchvision():
    torch.manual_seed(0)
    net = ResNetFeatures((1, 1, 1, 1))
    conv = net.layer2[0].conv2  # kaiming normal, fan_out, relu: std sqrt(2 / (out * k * k))
    assert conv.weight.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.05)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()


def test_features_equal_torchvisions_in_eval_mode(pair):
    ref, ours = pair
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = _torchvision_features(ref.eval(), x)
        got = ours.eval()(x)
    assert got.shape == (1, 2048, 8, 8)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_features_and_running_statistics_equal_torchvisions_in_train_mode(pair):
    from torchvision.models import resnet101

    ref, ours = pair
    ref_copy = resnet101(weights=None, replace_stride_with_dilation=[False, True, True])
    ref_copy.load_state_dict(ref.state_dict())
    mine = ResNetFeatures()
    mine.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = _torchvision_features(ref_copy.train(), x)
        got = mine.train()(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mine.layer4[2].bn3.running_var, ref_copy.layer4[2].bn3.running_var)


def test_batchnorm_folding_folds_every_bottleneck_pair():
    torch.manual_seed(0)
    net = ResNetFeatures((2, 1, 2, 2)).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    blocks = [m for m in net.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 7 and all(
        declared_pairs(b) == (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")) for b in blocks
    )
    folded = fold_batchnorm(net)
    assert not any(
        isinstance(m, nn.BatchNorm2d) for m in folded.modules()
    )  # downsample branches too
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-4)
