"""Loading a checkpoint: the network built on the meta device takes the file's tensors (every one
of them, at the network's dtypes), the finiteness check is exact even where finite weights
overflow a sum."""

import pytest
import torch

from refvos.checkpoint import load_checkpoint, save_checkpoint
from refvos.errors import CheckpointError
from tests.helpers import make_tiny_model


def test_every_tensor_comes_from_the_file(tmp_path):
    model = make_tiny_model(seed=3)
    path = save_checkpoint(tmp_path / "m.pth", model)
    loaded = load_checkpoint(path)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    held = [*loaded.parameters(), *loaded.buffers()]
    assert all(t.device.type == "cpu" for t in held)  # nothing left on the meta device
    assert all(p.requires_grad for p in loaded.parameters())  # parameters, trainable as a built network


def test_half_precision_file_loads_at_the_networks_dtypes(tmp_path):
    model = make_tiny_model()
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "half.pth", model)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    ckpt["bert_model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["bert_model"].items()}
    torch.save(ckpt, path)
    loaded = load_checkpoint(path)
    for k, v in loaded.state_dict().items():
        assert v.dtype == model.state_dict()[k].dtype, k
        assert torch.equal(v, half[k].to(v.dtype)), k


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
