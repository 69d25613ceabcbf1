"""Meta-device builds (refvos.modeling.meta): initialisers skipped on meta tensors only."""

import torch
from torch import nn

from refvos.modeling.meta import on_meta_device
from refvos.modeling.resnet import ResNetFeatures


def test_builds_on_meta_with_the_same_names_and_shapes():
    with on_meta_device():
        net = nn.Sequential(ResNetFeatures((1, 1, 1, 1)), nn.Embedding(10, 4))
    assert all(p.is_meta for p in net.parameters())
    cpu = nn.Sequential(ResNetFeatures((1, 1, 1, 1)), nn.Embedding(10, 4))
    assert [(k, v.shape) for k, v in net.state_dict().items()] == [
        (k, v.shape) for k, v in cpu.state_dict().items()
    ]


def test_tensors_off_the_meta_device_are_still_initialised():
    torch.manual_seed(0)
    with on_meta_device():
        emb = nn.Embedding(50, 8, device="cpu")
        conv = nn.Conv2d(4, 8, 3, device="cpu")
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        filled = torch.empty(3, device="cpu").fill_(2.0)
    assert emb.weight.std() > 0.5 and conv.weight.std() > 0.05
    assert torch.equal(filled, torch.full((3,), 2.0))
