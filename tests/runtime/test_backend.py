"""Backend choice: ``auto`` measures PyTorch and OpenVINO (when installed, precision auto) and
reports its choice; without the extra nothing changes and ``openvino`` names the install command."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from refvos import Predictor
from refvos.errors import InputError, RefVOSError
from refvos.runtime import candidate, openvino_backend, resolve_device
from refvos.runtime.backend import candidate_backends

pytestmark = pytest.mark.openvino  # OpenVINO loaded here: a pytest process of its own (make test)

CPU = resolve_device("cpu")


@pytest.fixture
def no_openvino(monkeypatch):
    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError


def test_without_the_extra_auto_is_torch_and_openvino_names_the_install(
    tiny_model, no_openvino, monkeypatch
):
    monkeypatch.delenv("REFVOS_PRECISION")
    assert candidate_backends("auto", CPU) == ("torch",)
    p = Predictor(tiny_model, device="cpu", max_size=32, compile=False)
    assert p.backend == "torch" and set(p.precision_choice.seconds) <= {"fp32", "bf16", "bf16+taps"}
    with pytest.raises(RefVOSError, match=r'pip install "refvos\[openvino\]"'):
        Predictor(tiny_model, device="cpu", backend="openvino")


def test_cli_backend_openvino_without_the_extra_is_one_line(
    tiny_checkpoint, no_openvino, tmp_path, capsys
):
    from refvos.cli import main

    code = main(
        [
            "predict",
            "--checkpoint",
            str(tiny_checkpoint),
            "--image",
            str(tmp_path / "x.png"),
            "--expression",
            "a",
            "--out",
            str(tmp_path / "o.png"),
            "--backend",
            "openvino",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and 'pip install "refvos[openvino]"' in err


def test_unknown_backend_is_refused(tiny_model):
    with pytest.raises(InputError, match="backend must be one of"):
        Predictor(tiny_model, device="cpu", backend="tensorrt")


needs_openvino = pytest.mark.skipif(
    not openvino_backend.available(), reason="the [openvino] extra is not installed"
)


@needs_openvino
def test_auto_measures_both_backends_and_says_which_ran(tiny_model, monkeypatch, tmp_path):
    monkeypatch.delenv("REFVOS_PRECISION")
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path))
    p = Predictor(tiny_model, device="cpu", max_size=32, compile=False)
    c = p.precision_choice
    assert set(c.seconds) == {
        "fp32",
        "bf16",
        "bf16+taps",
        "openvino:fp32",
        "openvino:bf16",
        "openvino:bf16+taps",
    }
    assert candidate(c.backend, c.precision, c.atrous) in c.seconds
    report = p.runtime_report()
    assert (
        report["backend"] == c.backend == p.backend and report["precision"]["backend"] == c.backend
    )
    assert report["compile"].get("backend", "torch") == c.backend
    assert "openvino:fp32" in c.reason
    again = Predictor(tiny_model, device="cpu", max_size=32, compile=False).precision_choice
    assert (again.backend, again.precision) == (
        c.backend,
        c.precision,
    ) or again.source == "measured"


@needs_openvino
def test_explicit_precision_keeps_auto_on_torch(tiny_model):
    assert candidate_backends("auto", CPU, precision="fp32") == ("torch",)
    p = Predictor(tiny_model, device="cpu", precision="fp32", compile=False)
    assert p.backend == "torch" and p.precision_choice.source == "explicit"


@needs_openvino
def test_openvino_backend_predicts_pytorchs_masks(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(36, 50, 3), dtype=np.uint8) for _ in range(3)]
    torch_p = Predictor(tiny_model, device="cpu", precision="fp32", backend="torch", compile=False)
    ov_p = Predictor(tiny_model, device="cpu", precision="fp32", backend="openvino", compile=False)
    assert ov_p.backend == "openvino" and ov_p.runtime_report()["compile"]["backend"] == "openvino"
    for a, b in zip(
        torch_p.predict_video(frames, "the dog", batch_size=2),
        ov_p.predict_video(frames, "the dog", batch_size=2),
    ):
        assert (a.mask != b.mask).mean() < 1e-3 and a.score == pytest.approx(b.score, abs=1e-4)


@needs_openvino
def test_auto_falls_back_to_torch_when_openvino_cannot_run_the_network(tiny_model, monkeypatch):
    monkeypatch.delenv("REFVOS_PRECISION")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operation")

    monkeypatch.setattr(openvino_backend, "OpenVINORunner", broken)
    p = Predictor(tiny_model, device="cpu", max_size=32, compile=False)  # measures nothing yet
    with pytest.warns(RuntimeWarning, match="unsupported operation"):
        p.calibrate()
    assert p.backend == "torch" and set(p.precision_choice.seconds) <= {"fp32", "bf16", "bf16+taps"}
