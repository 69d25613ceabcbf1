import argparse
import os
import pickle

import pytest
import torch

from refvos.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, to_released_format
from refvos.errors import CheckpointError
from tests.helpers import make_tiny_model


def _released(model) -> dict:
    """A checkpoint in the authors' layout: Namespace args, no embeddings.position_ids."""
    bert = {
        k: v for k, v in model.text_encoder.state_dict().items() if k != "embeddings.position_ids"
    }
    return {
        "model": model.segmenter.state_dict(),
        "bert_model": bert,
        "optimizer": {
            "state": {},
            "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}],
        },
        "epoch": 7,
        "args": argparse.Namespace(
            dataset="refcoco", model="deeplabv3_resnet101", lr=0.01, batch_size=7
        ),
    }


def test_released_r101_checkpoint_loads_strict_and_gives_same_logits(r101_model, tmp_path):
    path = tmp_path / "refcoco.pth"
    torch.save(_released(r101_model), path)
    loaded = load_checkpoint(path)
    assert loaded.config.variant == "refvos_r101" and loaded.config.max_tokens == 20
    assert not loaded.training
    # the released models were trained with the original's tokenisation: that is their default
    assert loaded.config.truncation == "original" and loaded.config.legacy_truncation
    assert load_checkpoint(path, truncation="standard").config.truncation == "standard"
    images = torch.randn(1, 3, 40, 56)
    ids = torch.tensor([[101, 1996, 2158, 2006, 1996, 2187, 102, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(images, ids, mask), r101_model(images, ids, mask), rtol=0, atol=0
        )


def test_released_a2d_checkpoint_gets_10_tokens(tmp_path):
    model = make_tiny_model()
    ckpt = _released(model)
    ckpt["args"].dataset = "a2d"
    # released files are always R101; a lite network is refused with a message naming the key
    path = tmp_path / "a2d.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="backbone.layer4"):
        load_checkpoint(path)


def test_refvos_format_round_trip(tmp_path):
    model = make_tiny_model(max_tokens=10).eval()
    path = save_checkpoint(tmp_path / "m.pth", model, epoch=2, args={"lr": 0.1})
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert read_checkpoint(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temporary file left behind


def test_refvos_checkpoint_records_its_truncation_rule(tmp_path):
    from refvos.predictor import Predictor

    model = make_tiny_model(max_tokens=10).eval()
    model.config.truncation = "original"
    path = save_checkpoint(tmp_path / "m.pth", model)
    assert read_checkpoint(path)["config"]["truncation"] == "original"
    loaded = load_checkpoint(path)
    assert (
        loaded.config.truncation == "original" and Predictor(loaded, device="cpu").legacy_truncation
    )
    overridden = load_checkpoint(path, truncation="standard")
    assert not Predictor(overridden, device="cpu").legacy_truncation
    # a refvos checkpoint written before the field existed was trained with standard truncation
    ckpt = read_checkpoint(path)
    del ckpt["config"]["truncation"]
    torch.save(ckpt, tmp_path / "old.pth")
    assert load_checkpoint(tmp_path / "old.pth").config.truncation == "standard"
    ckpt["config"]["truncation"] = "sliced"
    torch.save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="truncation must be one of"):
        load_checkpoint(tmp_path / "bad.pth")


def test_export_to_released_layout_and_back(r101_model, tmp_path):
    src = save_checkpoint(tmp_path / "ours.pth", r101_model, args={"dataset": "davis"})
    released = to_released_format(read_checkpoint(src))
    assert isinstance(released["args"], argparse.Namespace) and "format" not in released
    torch.save(released, tmp_path / "theirs.pth")
    again = load_checkpoint(tmp_path / "theirs.pth")
    assert again.config.max_tokens == 10  # davis models use 10 tokens
    assert torch.equal(
        again.segmenter.classifier.conv_2.weight, r101_model.segmenter.classifier.conv_2.weight
    )


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_code_executing_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "bert_model": {}, "args": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


def test_truncated_empty_and_missing_files(tmp_path):
    model = make_tiny_model()
    good = save_checkpoint(tmp_path / "good.pth", model)
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="cut.pth.*cannot be read"):
        load_checkpoint(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="text.pth"):
        load_checkpoint(tmp_path / "text.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")


def test_wrong_keys_are_listed(tmp_path):
    model = make_tiny_model()
    ckpt = torch.load(save_checkpoint(tmp_path / "m.pth", model), weights_only=True)
    ckpt["model"].pop("classifier.conv_2.bias")
    ckpt["model"]["classifier.extra.weight"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError,
        match=r"missing \['classifier.conv_2.bias'\].*unexpected \['classifier.extra.weight'\]",
    ):
        load_checkpoint(tmp_path / "bad.pth")


def test_checkpoint_of_another_model_is_refused(tmp_path):
    ckpt = torch.load(save_checkpoint(tmp_path / "m.pth", make_tiny_model()), weights_only=True)
    ckpt["model"] = {"conv.weight": torch.zeros(3, 3)}
    torch.save(ckpt, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "other.pth")


@pytest.mark.parametrize(
    "part, weight",
    [
        ("model", lambda m: m.segmenter.classifier.conv.weight),
        ("bert_model", lambda m: m.text_encoder.encoder.layer[1].output.dense.weight),
    ],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_weights_are_refused(tmp_path, part, weight, value):
    model = make_tiny_model()
    with torch.no_grad():
        weight(model)[0, 0] = value
    path = save_checkpoint(tmp_path / "nan.pth", model)
    with pytest.raises(
        CheckpointError, match=rf"'{part}' weight .* contains NaN or infinite values"
    ):
        load_checkpoint(path)


# Loading a checkpoint: the network built on the meta device takes the file's tensors (every one
# of them, at the network's dtypes), the finiteness check is exact even where finite weights
# overflow a sum.
def test_every_tensor_comes_from_the_file(tmp_path):
    model = make_tiny_model(seed=3)
    path = save_checkpoint(tmp_path / "m.pth", model)
    loaded = load_checkpoint(path)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    held = [*loaded.parameters(), *loaded.buffers()]
    assert all(t.device.type == "cpu" for t in held)  # nothing left on the meta device
    assert all(
        p.requires_grad for p in loaded.parameters()
    )  # parameters, trainable as a built network


def test_half_precision_file_loads_at_the_networks_dtypes(tmp_path):
    model = make_tiny_model()
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "half.pth", model)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    ckpt["bert_model"] = {
        k: v.half() if v.is_floating_point() else v for k, v in ckpt["bert_model"].items()
    }
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
