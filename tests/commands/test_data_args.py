"""The shared data-set flags: ``--truncation {original,standard}`` on train, test, predict and serve,
``--a2d-query {full,original}`` on the commands that read A2D-Sentences."""

from __future__ import annotations

import pytest

from refvos.cli import build_parser
from refvos.commands.data_args import a2d_query_rule
from refvos.errors import DataFormatError

REQUIRED = {
    "train": [],
    "test": ["--resume", "x.pth"],
    "predict": ["--checkpoint", "x.pth", "--image", "x.jpg", "-e", "a dog"],
    "serve": ["--checkpoint", "x.pth"],
}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_model_command_takes_truncation(command, capsys):
    argv = [command, *REQUIRED[command]]
    assert build_parser(argv).parse_args(argv).truncation is None  # the checkpoint's rule
    for rule in ("original", "standard"):
        assert build_parser(argv).parse_args([*argv, "--truncation", rule]).truncation == rule
    with pytest.raises(SystemExit) as e:
        build_parser(argv).parse_args([*argv, "--truncation", "legacy"])
    assert e.value.code == 2 and "invalid choice: 'legacy'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "test", "pretrain-bert"])
def test_commands_reading_a2d_take_a2d_query(command, capsys):
    argv = {
        "train": ["train"],
        "test": ["test", "--resume", "x.pth"],
        "pretrain-bert": ["pretrain-bert", "--out", "bert"],
    }[command]
    assert build_parser(argv).parse_args(argv).a2d_query is None
    for rule in ("full", "original"):
        assert build_parser(argv).parse_args([*argv, "--a2d-query", rule]).a2d_query == rule
        assert build_parser(argv).parse_args([*argv, "--a2d_query", rule]).a2d_query == rule
    with pytest.raises(SystemExit) as e:
        build_parser(argv).parse_args([*argv, "--a2d-query", "cut"])
    assert e.value.code == 2 and "invalid choice: 'cut'" in capsys.readouterr().err


def test_a2d_query_defaults_and_other_data_sets():
    from refvos.commands.test import a2d_query

    def args(command, *extra):
        argv = [command, *(["--resume", "x.pth"] if command == "test" else []), *extra]
        return build_parser(argv).parse_args(argv)

    assert a2d_query_rule(args("train", "--dataset", "a2d")) == "full"
    assert a2d_query_rule(args("train", "--dataset", "refcoco")) is None
    # refvos test: the authors' reading under --protocol refvos (the paper's A2D numbers), else full
    assert a2d_query(args("test", "--dataset", "a2d")) == "full"
    assert a2d_query(args("test", "--dataset", "a2d", "--protocol", "refvos")) == "original"
    assert (
        a2d_query(args("test", "--dataset", "a2d", "--protocol", "refvos", "--a2d-query", "full"))
        == "full"
    )
    assert a2d_query(args("test", "--dataset", "davis", "--protocol", "refvos")) is None
    for command in ("train", "test"):
        with pytest.raises(
            DataFormatError, match="--a2d-query applies to A2D-Sentences .*not davis"
        ):
            a2d_query_rule(args(command, "--dataset", "davis", "--a2d-query", "original"))
