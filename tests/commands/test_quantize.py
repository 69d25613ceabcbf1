"""``refvos quantize`` on a tiny network: the int8 model and its record with the measured
agreement, then ``refvos predict --int8-model`` runs it and says so."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from refvos.cli import main

# OpenVINO loaded here: a pytest process of its own (make test); NNCF looked up, not imported
pytestmark = [
    pytest.mark.openvino,
    pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="the [openvino] extra"),
]


@pytest.mark.slow
def test_quantize_writes_the_model_and_its_agreement_then_predict_runs_it(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "cache"))
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(
            frames / f"{i:03d}.png"
        )
    out = tmp_path / "int8" / "model.xml"
    code = main(
        [
            "quantize",
            "--checkpoint",
            str(tiny_checkpoint),
            "--calibration",
            str(frames),
            "--expression",
            "the dog",
            "--expression",
            "a cat",
            "--out",
            str(out),
            "--max-drop",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    assert (
        out.with_suffix(".bin").is_file()
        and record["size"] == [32, 32]
        and record["calibration_frames"] == 6
    )
    agreement = record["agreement"]
    assert (
        agreement["masks"] == 2 and 0.0 <= agreement["mean_iou"] <= 1.0
    )  # 1 held-out frame x 2 expressions
    assert agreement["expressions"] == ["a cat", "the dog"]
    capsys.readouterr()
    code = main(
        [
            "predict",
            "--checkpoint",
            str(tiny_checkpoint),
            "--image",
            str(frames / "000.png"),
            "--expression",
            "the dog",
            "--out",
            str(tmp_path / "o.png"),
            "--json",
            "--int8-model",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0
    runtime = json.loads(stdout)["runtime"]
    assert runtime["backend"] == "openvino" and runtime["precision"]["precision"] == "int8"
    assert runtime["int8_model"]["agreement"]["mean_iou"] == agreement["mean_iou"]


def test_bad_arguments_are_one_line(tiny_checkpoint, tmp_path, capsys):
    argv = [
        "quantize",
        "--checkpoint",
        str(tiny_checkpoint),
        "--calibration",
        str(tmp_path),
        "--expression",
        "a",
    ]
    assert main([*argv, "--out", str(tmp_path / "m.onnx")]) == 2
    assert "expected an OpenVINO .xml path" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "m.xml"), "--held-out", "1.5"]) == 2
    assert "--held-out" in capsys.readouterr().err
