"""benchmarks/original.py: the re-enactment of the original trains torchvision's plain convolutions."""

from __future__ import annotations

import torch

from benchmarks.original import plain_convolutions
from refvos.modeling.head import AtrousConv2d, LanguageFusedASPP
from tests.helpers.models import record_conv_kernels


def test_the_original_step_runs_every_tap_of_the_atrous_convolutions(monkeypatch):
    aspp = LanguageFusedASPP(8, 4, (6, 12, 18), channels=4).train()
    assert any(isinstance(m, AtrousConv2d) for m in aspp.modules())
    before = {k: v.clone() for k, v in aspp.state_dict().items()}
    plain_convolutions(aspp)
    assert not any(isinstance(m, AtrousConv2d) for m in aspp.modules())
    assert all(torch.equal(before[k], v) for k, v in aspp.state_dict().items())
    kernels = record_conv_kernels(monkeypatch)
    aspp.visual(torch.randn(2, 8, 5, 5))  # every rate reaches past a 5x5 map
    assert kernels.count((3, 3)) == 3
