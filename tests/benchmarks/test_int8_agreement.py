"""benchmarks/int8_agreement.py on a tiny checkpoint: the int8 model is written once and reused,
its agreement with fp32 is the record's, and the latency rows are the three Predictor paths
(keys and consistency only, never timings)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from benchmarks import int8_agreement

# OpenVINO loaded here: a pytest process of its own (make test); NNCF looked up, not imported
pytestmark = [
    pytest.mark.openvino,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="the [openvino] extra"),
]


def test_writes_then_reuses_the_int8_model(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "cache"))
    model, out = tmp_path / "int8" / "model.xml", tmp_path / "int8.json"
    argv = ["--checkpoint", str(tiny_checkpoint), "--int8-model", str(model)]
    argv += ["--size", "48", "--repeats", "1", "--out", str(out)]
    assert int8_agreement.main([*argv, "--max-drop", "0"]) == 0
    first = json.loads(out.read_text())
    record = json.loads(model.with_suffix(".json").read_text())
    assert record["recipe"]["accuracy_control_max_iou_drop"] is None  # --max-drop 0: plain
    assert 0.0 <= first["bf16_mask_iou_vs_fp32"] <= 1.0
    agreement = first["quantize"]["agreement"]
    assert (
        record["agreement"]["mean_iou"] == agreement["mean_iou"] == first["int8_mask_iou_vs_fp32"]
    )
    assert agreement["masks"] == len(int8_agreement.HELD_OUT_SEEDS) * int8_agreement.CLIP_FRAMES
    assert 0.0 <= agreement["min_iou"] <= agreement["mean_iou"] <= 1.0
    assert first["accurate"] == (agreement["mean_iou"] >= 0.98)
    assert record["graph_layout"] == 2 and record["recipe"]["encoder"] == "int8"
    assert set(first["latency"]) == {"size", "refvos_int8", "refvos_default", "refvos_fp32"}
    # refvos_lite's int8 encoder is per size: timed at its own (the checkpoint's side), not --size
    assert (
        first["latency"]["size"]
        == f"{first['side']}x{first['side']}"
        == "x".join(map(str, record["size"]))
    )
    assert first["int8_speedup_vs_default"] == pytest.approx(
        first["latency"]["refvos_default"]["median_s"] / first["latency"]["refvos_int8"]["median_s"]
    )
    assert int8_agreement.main(argv) == 0  # the model exists: reused, agreement measured again
    second = json.loads(out.read_text())
    assert second["quantize"]["reused"] is True
    assert second["int8_mask_iou_vs_fp32"] == pytest.approx(first["int8_mask_iou_vs_fp32"])
