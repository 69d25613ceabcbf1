"""benchmarks/workloads.py: the arithmetic the ceilings are computed from, and the profile."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks import workloads


@pytest.mark.parametrize(
    "length,kernel,stride,padding,dilation",
    [(16, 3, 1, 1, 1), (16, 3, 1, 12, 12), (16, 3, 1, 24, 24), (15, 7, 2, 3, 1), (9, 1, 1, 0, 1)],
)
def test_taps_in_map_counts_the_products_that_read_the_map(
    length, kernel, stride, padding, dilation
):
    # a convolution of ones over ones counts, per output, the taps that read the map
    ones = F.conv1d(
        torch.ones(1, 1, length),
        torch.ones(1, 1, kernel),
        stride=stride,
        padding=padding,
        dilation=dilation,
    )
    outputs, products = workloads.taps_in_map(length, kernel, stride, padding, dilation)
    assert outputs == ones.shape[-1] and products == int(ones.sum())


class _Net(nn.Module):
    """An image convolution, a 3x3 convolution of dilation 8 on a 4x4 map, a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.atrous = nn.Conv2d(4, 5, 3, padding=8, dilation=8)
        self.text = nn.Linear(6, 5)

    def forward(self, x, text):
        return self.atrous(self.stem(x)) * self.text(text)[:, :, None, None]


def test_count_arithmetic_leaves_out_the_padding_and_the_image_gradient():
    net = _Net()
    flops = workloads.count_arithmetic(net, 8, 8, text_dim=6, batch=2)
    stem = 2 * 2 * 3 * 4 * 4 * 4 * 9  # every tap of every output
    stem_in = 2 * 2 * 3 * 4 * workloads.taps_in_map(8, 3, 2, 1, 1)[1] ** 2
    atrous = 2 * 2 * 4 * 5 * 4 * 4 * 9
    atrous_in = 2 * 2 * 4 * 5 * 4 * 4  # dilation 8 on a 4x4 map: the centre tap alone
    linear = 2 * 2 * 6 * 5
    assert flops["all"] == stem + atrous + linear == workloads.count_flops(net, 8, 8, 6) * 2
    assert flops["in_map"] == stem_in + atrous_in + linear
    assert flops["in_map_train"] == 3 * flops["in_map"] - stem_in


def test_profile_counts_the_convolutions_forward_and_backward_apart_from_the_rest():
    net = _Net()
    x, text = torch.randn(2, 3, 32, 32), torch.randn(2, 6)

    a = torch.randn(384, 384)

    def step():
        net(x, text).sum().backward()
        torch.mm(a, a)  # work outside the convolutions

    def no_convolution():
        net.text(text).sum().backward()

    profiled = workloads.profile_top_ops(step)
    assert 0 < profiled["convolution_self_s"] < profiled["wall_total_self_s"]
    assert "aten::mm" in {row["op"] for row in profiled["top_self"]}
    assert workloads.profile_top_ops(no_convolution)["convolution_self_s"] == 0
