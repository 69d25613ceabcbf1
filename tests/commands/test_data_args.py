"""``--truncation {original,standard}`` on train, test, predict and serve."""

from __future__ import annotations

import pytest

from refvos.cli import build_parser

REQUIRED = {"train": [], "test": ["--resume", "x.pth"],
            "predict": ["--checkpoint", "x.pth", "--image", "x.jpg", "-e", "a dog"],
            "serve": ["--checkpoint", "x.pth"]}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_model_command_takes_truncation(command, capsys):
    argv = [command, *REQUIRED[command]]
    assert build_parser(argv).parse_args(argv).truncation is None  # the checkpoint's rule
    for rule in ("original", "standard"):
        assert build_parser(argv).parse_args([*argv, "--truncation", rule]).truncation == rule
    with pytest.raises(SystemExit) as e:
        build_parser(argv).parse_args([*argv, "--truncation", "legacy"])
    assert e.value.code == 2 and "invalid choice: 'legacy'" in capsys.readouterr().err
