"""``refvos serve``'s work budget flags: ``--max-seconds`` (default 30) is handed to
make_server to measure, ``--max-work N`` sets the pixel budget and nothing is measured; the two
exclude each other."""

from __future__ import annotations

import pytest

import refvos.serve
from refvos.budget import DEFAULT_MAX_SECONDS, DEFAULT_MAX_WORK
from refvos.checkpoint import save_checkpoint
from refvos.cli import main
from tests.helpers import make_tiny_model


class NotServing:
    url = "http://127.0.0.1:0"

    def serve_forever(self) -> None:
        pass


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(save_checkpoint(tmp_path_factory.mktemp("serve") / "model.pth", make_tiny_model()))


@pytest.fixture
def served(monkeypatch, checkpoint):
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


def test_default_is_a_time_budget_measured_by_the_server(served):
    limits, kwargs = served()
    assert kwargs["max_seconds"] == DEFAULT_MAX_SECONDS == 30.0
    limits, kwargs = served("--max-seconds", "12.5")
    assert kwargs["max_seconds"] == 12.5


def test_max_work_sets_the_pixel_budget_and_skips_the_measurement(served):
    limits, kwargs = served("--max-work", "5000")
    assert limits.max_work == 5000 and kwargs["max_seconds"] is None
    assert served()[0].max_work == DEFAULT_MAX_WORK  # replaced by the measured budget in make_server


@pytest.mark.parametrize("flags, words", [
    (["--max-seconds", "0"], "--max-seconds must be a number of seconds more than 0, got 0.0"),
    (["--max-seconds", "nan"], "--max-seconds must be a number of seconds more than 0, got nan"),
    (["--max-work", "0"], "--max-work must be at least 1"),
])
def test_bad_budgets_are_one_line(served, checkpoint, capsys, flags, words):
    assert main(["serve", "--checkpoint", checkpoint, *flags]) == 2
    assert words in capsys.readouterr().err


def test_both_budgets_at_once_are_refused(checkpoint, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--checkpoint", checkpoint, "--max-seconds", "5", "--max-work", "5000"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
