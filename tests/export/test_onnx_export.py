"""ONNX export: the exported graphs match PyTorch under onnxruntime."""

import numpy as np
import pytest
import torch

from refvos.export import export_onnx, onnx_session, segmenter_parity
from tests.helpers import make_tiny_model

pytest.importorskip("onnxruntime")


def _non_trivial(model, images, text):
    """Centre the logit difference on ``images`` / ``text`` so that their masks have both classes
    (random weights give one)."""
    model.eval()
    head = model.segmenter.classifier
    with torch.no_grad():
        head.conv_2.weight.mul_(50.0)
        logits = model.segmenter(images, text)
        diff = (logits[:, 1] - logits[:, 0]).median()
        head.conv_2.bias += torch.tensor([diff / 2, -diff / 2])
    return model


def test_export_segmenter_and_text_encoder_match_pytorch(tmp_path):
    g = torch.Generator().manual_seed(1)
    model = make_tiny_model()
    # another batch and size than the export example (checks the dynamic axes)
    images, text = (
        torch.randn(3, 3, 40, 56, generator=g),
        torch.randn(3, model.config.text_dim, generator=g),
    )
    model = _non_trivial(model, images, text)
    result = export_onnx(
        model,
        tmp_path / "seg.onnx",
        height=64,
        width=80,
        dynamic=True,
        text_encoder_out=tmp_path / "text.onnx",
    )
    assert (tmp_path / "seg.onnx").is_file() and (tmp_path / "text.onnx").is_file()
    p = result.parity
    assert p["max_abs_logit_diff"] < 1e-4
    assert p["max_abs_text_diff"] < 1e-4
    assert p["mask_pixel_agreement"] > 0.999
    r = segmenter_parity(model, tmp_path / "seg.onnx", images, text)
    assert r["max_abs_logit_diff"] < 1e-4
    assert 0.0 < r["foreground_fraction"] < 1.0  # the masks compared are not trivially empty


def test_static_export_has_fixed_shape(tmp_path):
    model = make_tiny_model().eval()
    export_onnx(model, tmp_path / "seg.onnx", height=32, width=48, check=False)
    sess = onnx_session(tmp_path / "seg.onnx")
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    assert shapes["images"] == [1, 3, 32, 48]
    out = sess.run(
        None,
        {
            "images": np.zeros((1, 3, 32, 48), np.float32),
            "text": np.zeros((1, model.config.text_dim), np.float32),
        },
    )[0]
    assert out.shape == (1, 2, 32, 48)
