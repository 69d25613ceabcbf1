"""refvos.commands.serve: ``--max-size`` by default the long side the checkpoint records it was
trained and evaluated at (``config.input_size``; Limits' default for a native-resolution
checkpoint such as the released ones), the flag overriding it -- as ``refvos predict`` does; the
work budget flags ``--max-seconds`` / ``--max-work``."""

from __future__ import annotations

import pytest

import refvos.serve
from refvos.checkpoint import save_checkpoint
from refvos.cli import main
from refvos.serve.budget import DEFAULT_MAX_SECONDS, DEFAULT_MAX_WORK
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


# ``refvos serve``'s work budget flags: ``--max-seconds`` (default 30) is handed to
# make_server to measure, ``--max-work N`` sets the pixel budget and nothing is measured; the two
# exclude each other.
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(save_checkpoint(tmp_path_factory.mktemp("serve") / "model.pth", make_tiny_model()))


@pytest.fixture
def served_budget(monkeypatch, checkpoint):
    """Runs ``refvos serve`` up to the server's start; returns (Limits, make_server's kwargs)."""
    seen = {}

    def make_server(model, host, port, limits, **kwargs):
        seen.update(limits=limits, kwargs=kwargs)
        return NotServing()

    monkeypatch.setattr(refvos.serve, "make_server", make_server)

    def run(*flags):
        assert main(["serve", "--checkpoint", checkpoint, "--device", "cpu", *flags]) == 0
        return seen["limits"], seen["kwargs"]

    return run


def test_default_is_a_time_budget_measured_by_the_server(served_budget):
    limits, kwargs = served_budget()
    assert kwargs["max_seconds"] == DEFAULT_MAX_SECONDS == 30.0
    limits, kwargs = served_budget("--max-seconds", "12.5")
    assert kwargs["max_seconds"] == 12.5


def test_max_work_sets_the_pixel_budget_and_skips_the_measurement(served_budget):
    limits, kwargs = served_budget("--max-work", "5000")
    assert limits.max_work == 5000 and kwargs["max_seconds"] is None
    assert (
        served_budget()[0].max_work == DEFAULT_MAX_WORK
    )  # replaced by the measured budget in make_server


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--max-seconds", "0"], "--max-seconds must be a number of seconds more than 0, got 0.0"),
        (
            ["--max-seconds", "nan"],
            "--max-seconds must be a number of seconds more than 0, got nan",
        ),
        (["--max-work", "0"], "--max-work must be at least 1"),
    ],
)
def test_bad_budgets_are_one_line(served_budget, checkpoint, capsys, flags, words):
    assert main(["serve", "--checkpoint", checkpoint, *flags]) == 2
    assert words in capsys.readouterr().err


def test_both_budgets_at_once_are_refused(checkpoint, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--checkpoint", checkpoint, "--max-seconds", "5", "--max-work", "5000"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
