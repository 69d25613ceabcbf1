import importlib.util

import numpy as np
import pytest
import torch

from refvos.errors import RefVOSError
from refvos.export import export_segmenter, onnx_session
from refvos.export.quantize import quantize_segmenter


@pytest.mark.slow
def test_int8_graph_runs_and_follows_the_fp32_logits(tiny_model, tmp_path):
    fp32 = export_segmenter(tiny_model, tmp_path / "fp32.onnx", 32, 32)
    rng = np.random.default_rng(0)
    frames = [
        (
            rng.standard_normal((1, 3, 32, 32)).astype(np.float32),
            rng.standard_normal((1, tiny_model.config.text_dim)).astype(np.float32),
        )
        for _ in range(3)
    ]
    int8 = quantize_segmenter(fp32, tmp_path / "int8.onnx", frames)
    x, t = frames[0]
    (ref,) = onnx_session(fp32).run(None, {"images": x, "text": t})
    (got,) = onnx_session(int8).run(None, {"images": x, "text": t})
    assert got.shape == ref.shape == (1, 2, 32, 32)
    with torch.no_grad():
        torch_ref = tiny_model.segmenter(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(ref, torch_ref, atol=1e-3)
    # quantised, not equal; but tracking the fp32 logits
    assert not np.array_equal(got, ref) and np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9


def test_no_calibration_frame_is_refused(tmp_path):
    with pytest.raises(RefVOSError, match="calibration"):
        quantize_segmenter(tmp_path / "x.onnx", tmp_path / "y.onnx", [])


def _quantized_convs(path) -> dict[str, bool]:
    """Conv node name -> whether its weight comes through a DequantizeLinear (int8)."""
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name: n.input[1] in dequantized for n in graph.node if n.op_type == "Conv"}


@pytest.mark.slow
@pytest.mark.parametrize("float_head", [True, False])
def test_head_left_float_and_backbone_quantized(tiny_model, tmp_path, float_head):
    fp32 = export_segmenter(tiny_model, tmp_path / "fp32.onnx", 32, 32)
    rng = np.random.default_rng(0)
    frames = [
        (
            rng.standard_normal((1, 3, 32, 32)).astype(np.float32),
            rng.standard_normal((1, tiny_model.config.text_dim)).astype(np.float32),
        )
        for _ in range(2)
    ]
    convs = _quantized_convs(
        quantize_segmenter(fp32, tmp_path / "int8.onnx", frames, float_head=float_head)
    )
    head = {name: q for name, q in convs.items() if name.startswith("/classifier/")}
    backbone = {name: q for name, q in convs.items() if not name.startswith("/classifier/")}
    assert head and backbone
    assert all(
        backbone.values()
    )  # BN folded into them by the pre-processing, then int8 per channel
    assert not any(head.values()) if float_head else all(head.values())


@pytest.mark.openvino
@pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="the [openvino] extra")
def test_activation_ranges_cover_every_calibration_frame(tiny_model, tmp_path, monkeypatch):
    """The int8 encoder's input range is the greatest value over all calibration frames, so a
    peak that one frame reaches is not clipped (NNCF's default would take the mean of the
    frames' maxima: about a third of it here)."""
    import openvino as ov

    from refvos.export.quantize import quantize_encoder
    from refvos.predictor import Predictor

    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "cache"))
    dim = np.full((32, 32, 3), 120, np.uint8)
    dim[0, 0] = 140
    bright = dim.copy()
    bright[0, 0] = 255
    calibration = [(dim, "a"), (dim, "a"), (dim, "a"), (bright, "a")]
    record = quantize_encoder(
        tiny_model, tmp_path / "m.xml", calibration, [(dim, "a")], max_drop=None
    )
    assert record["recipe"]["activation_ranges"] == "min-max over all calibration frames"
    fp32 = Predictor(tiny_model, device="cpu", precision="fp32", backend="torch", compile=False)
    highs = [float(fp32.preprocess(frame).max()) for frame, _ in calibration]
    graph = ov.Core().read_model(str(tmp_path / "m.xml"))
    (on_input,) = [
        op
        for op in graph.get_ordered_ops()
        if op.get_type_name() == "FakeQuantize"
        and op.input_value(0).get_node().get_type_name() == "Parameter"
    ]
    input_high = float(on_input.input_value(2).get_node().get_data().max())
    assert input_high == pytest.approx(max(highs), rel=0.01)
    assert input_high > 1.5 * np.mean(highs)
