"""Loading a checkpoint: the network gets uninitialised storage that loading fills entirely, the
finiteness check is exact even where finite weights overflow a sum."""

import pytest
import torch

from refvos.checkpoint import load_checkpoint, save_checkpoint
from refvos.errors import CheckpointError
from tests.conftest import make_tiny_model


def test_every_tensor_comes_from_the_file(tmp_path):
    model = make_tiny_model(seed=3)
    path = save_checkpoint(tmp_path / "m.pth", model)
    for _ in range(2):  # uninitialised memory is reused between loads: each must be exact
        loaded = load_checkpoint(path)
        assert loaded.state_dict().keys() == model.state_dict().keys()
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
        assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_huge_finite_weights_load_and_one_infinity_among_them_is_refused(tmp_path):
    model = make_tiny_model()
    weight = model.segmenter.classifier.conv.weight
    with torch.no_grad():
        weight.fill_(3e38)  # finite, but their float32 sum overflows
    assert not torch.isfinite(weight.sum())
    loaded = load_checkpoint(save_checkpoint(tmp_path / "big.pth", model))
    assert torch.equal(loaded.segmenter.classifier.conv.weight, weight)
    with torch.no_grad():
        weight[0, 0] = float("inf")
    with pytest.raises(CheckpointError, match=r"'model' weight .* contains NaN or infinite values"):
        load_checkpoint(save_checkpoint(tmp_path / "inf.pth", model))
