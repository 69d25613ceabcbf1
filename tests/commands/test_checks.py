"""Mistakes a newcomer makes on the first run, each refused at start-up with one line that
names the argument or file and what was expected (before any model is built)."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

import refvos.commands.train as train_command
from refvos.cli import build_parser, main
from refvos.commands.checks import parse_text_config
from refvos.data import synthetic
from refvos.errors import InputError
from tests.helpers import TINY_TEXT_CONFIG, train_argv


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command builds a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the arguments were checked")

    monkeypatch.setattr(train_command, "new_model", refuse)


def _error(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _train(root, out, *extra):
    return train_argv(root, out, "-b", "2", *extra)


def test_empty_validation_split_is_named_before_training(tmp_path, capsys, no_model):
    root = synthetic.make_refcoco(
        tmp_path / "data", num_images=16, image_size=48
    )  # train split only
    err = _error(capsys, _train(root, tmp_path / "runs"))
    assert "'val'" in err and "train" in err  # the missing split, and the splits there are
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["-b", "0"], "--batch-size"),
        (["--lr", "-1"], "--lr"),
        (["--epochs", "0"], "--epochs"),
    ],
)
def test_bad_numbers_refused_before_the_model(
    refcoco_root, tmp_path, capsys, no_model, extra, words
):
    assert words in _error(capsys, _train(refcoco_root, tmp_path, *extra))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["train", "test", "predict", "serve", "pretrain-bert"])
def test_cuda_without_gpu_refused_before_the_model(
    refcoco_root, tiny_checkpoint, tmp_path, capsys, no_model, monkeypatch, command
):
    import refvos.checkpoint

    monkeypatch.setattr(
        refvos.checkpoint, "load_checkpoint", lambda *a, **k: pytest.fail("model loaded")
    )
    argv = {
        "train": _train(refcoco_root, tmp_path) + ["--device", "cuda"],
        "test": [
            "test",
            "--checkpoint",
            tiny_checkpoint,
            "--refer_data_root",
            refcoco_root,
            "--device",
            "cuda",
        ],
        "predict": [
            "predict",
            "--checkpoint",
            tiny_checkpoint,
            "--image",
            next((refcoco_root / "images").rglob("*.png")),
            "-e",
            "x",
            "--device",
            "cuda",
        ],
        "serve": ["serve", "--checkpoint", tiny_checkpoint, "--device", "cuda"],
        "pretrain-bert": [
            "pretrain-bert",
            "--refer_data_root",
            refcoco_root,
            "--bert",
            "none",
            "--out",
            tmp_path / "bert",
            "--device",
            "cuda",
        ],
    }[command]
    err = _error(capsys, argv)
    assert "--device cuda" in err and "GPU" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_check_left_to_each_process_under_torchrun(monkeypatch):
    from refvos.commands.checks import check_runtime_arguments

    args = build_parser(["test"]).parse_args(["test", "--checkpoint", "m.pth", "--device", "cuda"])
    with pytest.raises(InputError, match="--device cuda"):
        check_runtime_arguments(args)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_runtime_arguments(args)  # each torchrun process resolves cuda:LOCAL_RANK itself


def test_text_config_example_of_the_help_works(refcoco_root, tmp_path):
    help_text = next(
        a.help
        for a in build_parser(["train"])._subparsers._group_actions[0].choices["train"]._actions
        if "--text-config" in a.option_strings
    )
    example = re.search(r"'(\{.*\})'", help_text).group(1)
    from refvos.modeling.text_encoder import build_text_encoder

    config = parse_text_config(example)
    encoder = build_text_encoder({**TINY_TEXT_CONFIG, **config})
    assert encoder.config["hidden_size"] == 64 and len(encoder.encoder.layer) == 2


def test_text_config_that_cannot_fit_is_one_line(refcoco_root, tmp_path, capsys, no_model):
    bad = [
        "--text-encoder",
        "none",
        "--text-config",
        '{"hidden_size": 64, "num_attention_heads": 5}',
    ]
    err = _error(capsys, _train(refcoco_root, tmp_path, *bad))
    assert "hidden_size 64" in err and "num_attention_heads 5" in err


@pytest.mark.parametrize("command", ["predict", "test", "export", "serve", "export-original"])
@pytest.mark.parametrize("kind", ["folder", "png"])
def test_wrong_file_as_checkpoint_says_what_it_is(refcoco_root, tmp_path, capsys, command, kind):
    if kind == "folder":
        bad = tmp_path / "run"
        bad.mkdir()
    else:
        bad = tmp_path / "photo.png"
        Image.new("RGB", (8, 8)).save(bad)
    image = next((refcoco_root / "images").rglob("*.png"))
    extra = {
        "predict": ["--image", image, "-e", "x"],
        "test": ["--refer_data_root", refcoco_root],
        "export": ["--out", tmp_path / "m.onnx"],
        "export-original": ["--out", tmp_path / "o.pth"],
    }
    err = _error(capsys, [command, "--checkpoint", bad, *extra.get(command, [])])
    assert str(bad) in err and ("is a folder" if kind == "folder" else "is a PNG image") in err
    assert ".pth checkpoint" in err and "weights_only" not in err


def test_unknown_split_is_named_with_the_existing_ones(
    refcoco_root, tiny_checkpoint, tmp_path, capsys
):
    err = _error(
        capsys,
        [
            "test",
            "--checkpoint",
            tiny_checkpoint,
            "--refer_data_root",
            refcoco_root,
            "--split",
            "testC",
            "--output-dir",
            tmp_path,
        ],
    )
    assert "'testC'" in err and "testA, testB, train, val" in err


def test_device_and_precision_flags_come_from_one_helper():
    import argparse
    from pathlib import Path

    import refvos.commands
    from refvos.commands.checks import add_runtime_arguments
    from refvos.runtime import PRECISIONS

    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser, "fp32")
    actions = {a.dest: a for a in parser._actions}
    assert (
        tuple(actions["precision"].choices) == PRECISIONS and actions["precision"].default == "fp32"
    )
    assert actions["device"].default is None
    # no command spells the flags (or the precisions) out itself
    for source in Path(refvos.commands.__file__).parent.glob("*.py"):
        text = source.read_text()
        assert '"--precision"' not in text or source.name == "checks.py", source.name
        assert '"bf16", "fp16")' not in text, source.name
