"""``refvos serve --max-size``: by default the long side the checkpoint records it was trained and
evaluated at (``config.input_size``; Limits' default for a native-resolution checkpoint such as
the released ones), and the flag overrides it -- as ``refvos predict`` does."""

from __future__ import annotations

import pytest

import refvos.serve
from refvos.checkpoint import save_checkpoint
from refvos.cli import main
from refvos.serve.limits import Limits
from tests.helpers import make_tiny_model


class NotServing:
    url = "http://127.0.0.1:0"

    def serve_forever(self) -> None:
        pass


@pytest.fixture
def served(monkeypatch):
    """Runs ``refvos serve`` up to the server's start; returns the Limits it was given."""
    seen = {}

    def make_server(model, host, port, limits, **kwargs):
        seen.update(limits=limits, model=model)
        return NotServing()

    monkeypatch.setattr(refvos.serve, "make_server", make_server)

    def run(ckpt, *flags) -> Limits:
        assert main(["serve", "--checkpoint", str(ckpt), "--device", "cpu", *flags]) == 0
        return seen["limits"]

    return run


def _checkpoint(tmp_path, input_size):
    model = make_tiny_model()
    model.config.input_size = input_size
    return save_checkpoint(tmp_path / f"model_{input_size}.pth", model)


def test_default_follows_the_checkpoints_input_size(served, tmp_path):
    assert served(_checkpoint(tmp_path, 96)).max_size == 96
    assert served(_checkpoint(tmp_path, 320)).max_size == 320


def test_native_resolution_checkpoint_gets_the_limits_default(served, tmp_path):
    assert served(_checkpoint(tmp_path, None)).max_size == Limits().max_size


def test_flag_overrides_the_checkpoint(served, tmp_path):
    ckpt = _checkpoint(tmp_path, 96)
    assert served(ckpt, "--max-size", "200").max_size == 200
    assert served(ckpt, "--max_size", "48").max_size == 48
    assert served(_checkpoint(tmp_path, None), "--max-size", "64").max_size == 64


def test_too_small_a_flag_is_refused_before_loading(served, tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "absent.pth"), "--max-size", "8"]) == 2
    assert "--max-size must be at least 16 pixels, got 8" in capsys.readouterr().err
