"""The OpenVINO runner (the ``[openvino]`` extra): the logits of PyTorch fp32, converted and
compiled once per weights (a second runner reads both from the cache), int8 models checked."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from refvos.errors import InputError
from refvos.runtime import openvino_backend as ovb
from tests.helpers import make_tiny_model

# OpenVINO loaded here: a pytest process of its own (make test); looked up, not imported, at
# collection so that the other tests' process never loads it
pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="the [openvino] extra"),
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("hw", [(37, 53), (40, 40)])
def test_logits_are_pytorch_fp32s(tiny_model, cache, hw):
    seg = tiny_model.segmenter
    runner = ovb.OpenVINORunner(seg, "fp32")
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, tiny_model.config.text_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = seg.decode(seg.encode(x), text, (50, 60))
    got = runner.decode(runner.encode(x), text, (50, 60))
    assert got.shape == ref.shape == (2, 2, 50, 60) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    # EfficientNet-Lite's same-padding depends on the size: one graph per size
    assert not ovb.shape_generic(seg) and runner.report()["sizes"] == [list(hw)]


def test_a_second_runner_neither_converts_nor_compiles(tiny_model, cache):
    x = torch.randn(1, 3, 32, 32)
    first = ovb.OpenVINORunner(tiny_model.segmenter, "fp32")
    first.encode(x)
    assert first.report()["converted"] == 1 and not first.report()["loaded_from_cache"]
    assert list((cache / "openvino" / "compiled").iterdir())  # OpenVINO's blobs on disk
    second = ovb.OpenVINORunner(tiny_model.segmenter, "fp32")
    torch.testing.assert_close(second.encode(x), first.encode(x))
    assert second.report()["converted"] == 0 and second.report()["loaded_from_cache"]


def test_other_weights_make_another_folder(cache):
    a, b = make_tiny_model(seed=0), make_tiny_model(seed=1)
    assert ovb.weights_key(a.segmenter) != ovb.weights_key(b.segmenter)
    assert ovb.weights_key(a.segmenter) == ovb.weights_key(make_tiny_model(seed=0).segmenter)


def test_int8_model_of_other_weights_or_size_is_refused(tiny_model, cache, tmp_path):
    runner = ovb.OpenVINORunner(tiny_model.segmenter, "fp32")
    runner.encode(torch.randn(1, 3, 32, 32))
    xml = next((cache / "openvino" / "models").glob("*/encoder-32x32.xml"))
    with pytest.raises(InputError, match="record"):
        ovb.OpenVINORunner(tiny_model.segmenter, "fp32", int8_encoder=xml)
    layout = ovb.GRAPH_LAYOUT
    record = {"weights": "0" * 16, "size": [32, 32], "graph_layout": layout}
    xml.with_suffix(".json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="other weights"):
        ovb.OpenVINORunner(tiny_model.segmenter, "fp32", int8_encoder=xml)
    # an int8 encoder of the earlier split (it ended at the backbone) is refused, not mis-run
    record = {"weights": runner.key, "size": [32, 32]}
    xml.with_suffix(".json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="earlier refvos.*refvos quantize"):
        ovb.OpenVINORunner(tiny_model.segmenter, "fp32", int8_encoder=xml)
    xml.with_suffix(".json").write_text(json.dumps({**record, "graph_layout": layout}))
    int8 = ovb.OpenVINORunner(tiny_model.segmenter, "fp32", int8_encoder=xml)
    assert (
        int8.encode(torch.randn(1, 3, 32, 32)).shape[0] == 1
        and int8.report()["precision"] == "int8"
    )
    with pytest.raises(InputError, match="quantised for 32x32"):
        int8.encode(torch.randn(1, 3, 24, 32))


def test_head_ops_are_the_aspp_after_the_backbone(tiny_model, tmp_path):
    """The encoder graph ends with the head's ASPP; ``head_ops`` names exactly its convolutions
    (the four branches, the pooling branch and the projection: those fed by the backbone's output
    or by the branches, nothing upstream), which int8 keeps in float."""
    import openvino as ov

    model = ov.Core().read_model(str(ovb.convert_encoder(tiny_model.segmenter, tmp_path)))
    head = ovb.head_ops(model, tiny_model.segmenter)
    aspp = tiny_model.segmenter.classifier.aspp
    assert len(head) == len(aspp.convs) + 1
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    weights = sorted(tuple(ops[n].input(1).get_partial_shape().to_shape()) for n in head)
    expected = sorted(
        tuple(m.weight.shape)
        for part in (aspp.convs, aspp.project)
        for m in part.modules()
        if isinstance(m, torch.nn.Conv2d)
    )
    assert weights == expected


def test_a_per_size_graph_converts_inside_the_predictors_autocast(tiny_model, cache):
    """refvos_lite converts a graph per image size on first use, which happens inside the
    Predictor's bf16 autocast: the conversion must not trace autocast's casts."""
    assert not ovb.shape_generic(tiny_model.segmenter)
    runner = ovb.OpenVINORunner(tiny_model.segmenter, "bf16")
    x, text = torch.randn(1, 3, 40, 40), torch.randn(1, tiny_model.config.text_dim)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = runner.decode(runner.encode(x), text, (40, 40))
    assert logits.shape == (1, 2, 40, 40) and runner.report()["converted"] == 2


def test_the_taps_form_converts_one_graph_for_every_size_with_pytorchs_logits(cache):
    from refvos.modeling import build_model
    from tests.helpers.models import TINY_TEXT_CONFIG

    torch.manual_seed(0)
    model = build_model(
        "refvos_r101", backbone_weights=None, text_encoder=None, text_config=TINY_TEXT_CONFIG
    ).eval()
    seg = model.segmenter
    assert ovb.shape_generic(seg)
    runner = ovb.OpenVINORunner(seg, "fp32", atrous="taps")
    assert runner.folder.name.endswith("-taps") and runner.report()["atrous"] == "taps"
    text = torch.randn(1, model.config.text_dim, generator=torch.Generator().manual_seed(1))
    for hw in ((64, 64), (40, 88)):  # features 8x8 (every outer tap past the map) and 5x11
        x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = seg.decode(seg.encode(x), text, hw)
        torch.testing.assert_close(
            runner.decode(runner.encode(x), text, hw), ref, atol=1e-3, rtol=1e-3
        )
    assert runner.report()["converted"] == 2  # the encoder and the head, once
