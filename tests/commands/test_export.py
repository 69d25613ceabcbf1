"""``refvos export``: an ONNX file written and checked against PyTorch; bad sizes refused."""

import pytest

from refvos.checkpoint import save_checkpoint
from refvos.cli import main
from tests.helpers import make_mixed_model, make_tiny_model

pytest.importorskip("onnxruntime")


def test_export_command(tmp_path, capsys):
    """A network whose masks are mixed, so the parity check compares masks that could differ."""
    ckpt = save_checkpoint(tmp_path / "tiny.pth", make_mixed_model())
    rc = main(
        [
            "export",
            "--checkpoint",
            str(ckpt),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "m.onnx"),
            "--height",
            "48",
            "--width",
            "64",
            "--dynamic",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "m.onnx").is_file()
    assert "parity check passed" in out and "max_abs_logit_diff" in out


def test_export_command_rejects_tiny_sizes(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "tiny.pth", make_tiny_model())
    rc = main(
        ["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--height", "8"]
    )
    assert rc == 2 and "must be in 16..4096, got 480x8" in capsys.readouterr().err
