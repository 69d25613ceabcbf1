"""The original RefVOS's command lines (its README and args.py, shared by train.py and test.py):
each flag either works or stops with one line naming its counterpart."""

from __future__ import annotations

import pytest

from refvos.cli import main, parse
from refvos.commands.original_flags import ACCEPTED, IGNORED
from refvos.commands.train_setup import base_side, selection_size

# The command lines of the original README, as typed (python3 train.py -> refvos train).
README_LINES = [
    "train --dataset refcoco --model_id model",
    "train --dataset refcoco --model_id model_pretrained_bert --ck_bert ./checkpoints_bert/bert_pretrained_refcoco",
    "train --dataset a2d --model_id a2d_model --pretrained_refvos --ck_pretrained_refvos ./checkpoints/model_refcoco.pth",
    "test --dataset refcoco --resume ./checkpoints/model_refcoco.pth --split val",
    "test --dataset refcoco --resume ./checkpoints/model_refcoco.pth --split val --display",
]

# Every flag of the original's args.py (miriambellver/refvos at 2ed9929), in its order: what it
# meant there, and what refvos train and refvos test do with it. Outcomes:
#   ("same", dest, value)    the flag parses to the same setting (its example value)
#   ("mapped", check, how)   refvos does what the flag did, under its own name or rule; ``check``
#                            takes the parsed arguments
#   ("refused", words)       one line naming where the meaning went (``words`` are in it)
#   ("ignored", reason)      accepted and ignored: the original never acted on it, or refvos does
#                            what it asks anyway
ORIGINAL_FLAGS = [
    (
        "--model_id",
        "m",
        "run name: models/<id>/ logs and <output-dir>/model_best_<id>.pth",
        ("same", "model_id", "m"),
        ("refused", "--output-dir"),
    ),
    (
        "--dataset",
        "a2d",
        "refcoco, refcoco+, davis or a2d",
        ("same", "dataset", "a2d"),
        ("same", "dataset", "a2d"),
    ),
    (
        "--model",
        "deeplabv3_resnet101",
        "the segmentation network (deeplabv3_resnet101)",
        ("same", "model", "deeplabv3_resnet101"),
        ("refused", "checkpoint"),
    ),
    (
        "--aux-loss",
        None,
        "an auxiliary FCN head and loss",
        ("refused", "auxiliary"),
        ("refused", "auxiliary"),
    ),
    (
        "-b",
        "6",
        "training batch size (default 6; the paper says 7)",
        ("same", "batch_size", 6),
        ("same", "batch_size", 6),
    ),
    ("--batch-size", "6", "the same as -b", ("same", "batch_size", 6), ("same", "batch_size", 6)),
    (
        "--base_size",
        "520",
        "training resizes the shorter side to int(0.8 * N) and validation to N",
        (
            "mapped",
            lambda a: base_side(a) == 416 and selection_size(a) == 520,
            "trains at int(0.8 * N), --selection paper validates at N",
        ),
        ("refused", "own size"),
    ),
    (
        "--crop_size",
        "480",
        "square random training crop",
        ("same", "crop_size", 480),
        ("refused", "own size"),
    ),
    ("--epochs", "30", "epochs (default 30)", ("same", "epochs", 30), ("refused", "refvos train")),
    ("-j", "16", "DataLoader workers", ("same", "workers", 16), ("same", "workers", 16)),
    ("--workers", "16", "the same as -j", ("same", "workers", 16), ("same", "workers", 16)),
    ("--lr", "0.01", "base learning rate", ("same", "lr", 0.01), ("refused", "refvos train")),
    ("--momentum", "0.9", "SGD momentum", ("same", "momentum", 0.9), ("refused", "refvos train")),
    (
        "--wd",
        "1e-4",
        "weight decay (default 1e-4; the paper says 1e-6)",
        ("same", "weight_decay", 1e-4),
        ("refused", "refvos train"),
    ),
    (
        "--weight-decay",
        "1e-4",
        "the same as --wd",
        ("same", "weight_decay", 1e-4),
        ("refused", "refvos train"),
    ),
    (
        "--pretrained",
        None,
        "COCO-trained torchvision DeepLabv3 weights",
        ("refused", "--backbone-weights"),
        ("refused", "--backbone-weights"),
    ),
    (
        "--optimizer",
        "sgd",
        "never read (SGD always)",
        ("ignored", "never read"),
        ("ignored", "never read"),
    ),
    (
        "--print-freq",
        "10",
        "log every N iterations",
        ("same", "print_freq", 10),
        ("refused", "refvos train"),
    ),
    (
        "--output-dir",
        "./checkpoints/",
        "train: folder of model_best_<id>.pth; test.py never read it",
        (
            "mapped",
            lambda a: a.output_dir == "./checkpoints/",
            "checkpoints in <output-dir>/<model_id>/",
        ),
        (
            "mapped",
            lambda a: a.output_dir == "./checkpoints/",
            "the folder of metrics.json and samples.jsonl",
        ),
    ),
    (
        "--local_rank",
        "0",
        "torch.distributed.launch's rank",
        ("ignored", "LOCAL_RANK"),
        ("ignored", "LOCAL_RANK"),
    ),
    ("--device", "cpu", "the device", ("same", "device", "cpu"), ("same", "device", "cpu")),
    (
        "--test-only",
        None,
        "train.py: evaluate and stop",
        ("refused", "refvos test --checkpoint"),
        ("ignored", "test.py only tests"),
    ),
    (
        "--multiply_feats",
        None,
        "multiplicative fusion (default on)",
        ("ignored", "multiplication"),
        ("ignored", "multiplication"),
    ),
    (
        "--addition",
        None,
        "additive fusion",
        ("refused", "multiplication"),
        ("refused", "multiplication"),
    ),
    (
        "--fixed_lr",
        None,
        "rate --lr * --lr_specific at every step",
        ("mapped", lambda a: a.fixed_lr is True, "--schedule fixed (rate --lr * --lr_specific)"),
        ("refused", "--schedule fixed"),
    ),
    (
        "--linear_lr",
        None,
        "rate --lr - --lr_specific_decrease * epoch",
        ("refused", "--schedule"),
        ("refused", "--schedule"),
    ),
    (
        "--lr_specific",
        "3e-5",
        "the factor of --fixed_lr",
        ("same", "lr_specific", 3e-5),
        ("refused", "refvos train"),
    ),
    (
        "--lr_specific_decrease",
        "0.001",
        "the per-epoch decrease of --linear_lr",
        ("refused", "--schedule"),
        ("refused", "--schedule"),
    ),
    (
        "--baseline_bilstm",
        None,
        "the GloVe + BiLSTM baseline",
        ("refused", "BiLSTM"),
        ("refused", "BiLSTM"),
    ),
    ("--load_optimizer", None, "never read", ("ignored", "never read"), ("ignored", "never read")),
    (
        "--resume",
        "c.pth",
        "train: segmentation weights and optimizer of a file, epochs from 0; test: the model",
        (
            "mapped",
            lambda a: a.resume == "c.pth",
            "continues a refvos run exactly; an original-format file is "
            "refused, naming --pretrained_refvos",
        ),
        ("same", "checkpoint", "c.pth"),
    ),
    (
        "--bert_tokenizer",
        "bert-base-uncased",
        "the tokenizer's hub name",
        ("refused", "tokenizer"),
        ("refused", "tokenizer"),
    ),
    (
        "--glove_dict",
        "g.txt",
        "GloVe vectors of the baseline",
        ("refused", "GloVe"),
        ("refused", "GloVe"),
    ),
    (
        "--ck_bert",
        "bert",
        "BERT weights (a save_pretrained folder or a hub name)",
        ("same", "ck_bert", "bert"),
        ("refused", "checkpoint"),
    ),
    (
        "--results_folder",
        "./results/",
        "test.py: figures (its --display branch never ran)",
        ("refused", "refvos test --output-dir"),
        ("mapped", lambda a: a.output_dir == "./results/", "--output-dir"),
    ),
    (
        "--submission_path",
        "./results_submission/",
        "test.py: DAVIS PNGs (never written: the branch never ran)",
        ("refused", "refvos test --submission"),
        ("mapped", lambda a: a.submission == "./results_submission/", "--submission"),
    ),
    (
        "--split",
        "val",
        "test.py: the split",
        ("refused", "refvos test --split"),
        ("same", "split", "val"),
    ),
    (
        "--display",
        None,
        "test.py: overlays (never written: evaluate() got display=False)",
        ("refused", "refvos test --display"),
        ("mapped", lambda a: a.display is True, "writes the overlays"),
    ),
    (
        "--pretrained_refvos",
        None,
        "start from --ck_pretrained_refvos",
        ("same", "pretrained_refvos", True),
        ("refused", "refvos train"),
    ),
    (
        "--ck_pretrained_refvos",
        "c.pth",
        "the RefVOS checkpoint to start from",
        ("same", "ck_pretrained_refvos", "c.pth"),
        ("refused", "refvos train"),
    ),
    (
        "--refer_data_root",
        "./datasets/refer/data/",
        "REFER data folder",
        ("same", "refer_data_root", "./datasets/refer/data/"),
        ("same", "refer_data_root", "./datasets/refer/data/"),
    ),
    (
        "--refer_dataset",
        "refcoco",
        "read by the GloVe baseline only",
        ("ignored", "GloVe"),
        ("ignored", "GloVe"),
    ),
    ("--splitBy", "unc", "REFER split", ("same", "splitBy", "unc"), ("same", "splitBy", "unc")),
    (
        "--davis_data_root",
        "./datasets/davis2017",
        "DAVIS folder",
        ("same", "davis_root", "./datasets/davis2017"),
        ("same", "davis_root", "./datasets/davis2017"),
    ),
    (
        "--davis_annotations_file",
        "a.txt",
        "test.py: --display captions only",
        ("ignored", "never ran"),
        ("ignored", "never ran"),
    ),
    (
        "--emb_type",
        "first_mask",
        "DAVIS expressions: first_mask or full_video",
        ("refused", "first_mask"),
        ("refused", "--expressions"),
    ),
    (
        "--a2d_data_root",
        "./datasets/Release/",
        "A2D Release folder",
        ("same", "a2d_root", "./datasets/Release/"),
        ("same", "a2d_root", "./datasets/Release/"),
    ),
    (
        "--size_a2d_x",
        "240",
        "stored, never used",
        ("ignored", "never used"),
        ("ignored", "never used"),
    ),
    (
        "--size_a2d_y",
        "427",
        "stored, never used",
        ("ignored", "never used"),
        ("ignored", "never used"),
    ),
    (
        "--a2d_annotations_file",
        "a.txt",
        "A2D annotation file",
        ("refused", "--a2d_root"),
        ("refused", "--a2d_root"),
    ),
]

# The option strings of the original's args.py, in its order.
ARGS_PY = [
    "--model_id",
    "--dataset",
    "--model",
    "--aux-loss",
    "-b",
    "--batch-size",
    "--base_size",
    "--crop_size",
    "--epochs",
    "-j",
    "--workers",
    "--lr",
    "--momentum",
    "--wd",
    "--weight-decay",
    "--pretrained",
    "--optimizer",
    "--print-freq",
    "--output-dir",
    "--local_rank",
    "--device",
    "--test-only",
    "--multiply_feats",
    "--addition",
    "--fixed_lr",
    "--linear_lr",
    "--lr_specific",
    "--lr_specific_decrease",
    "--baseline_bilstm",
    "--load_optimizer",
    "--resume",
    "--bert_tokenizer",
    "--glove_dict",
    "--ck_bert",
    "--results_folder",
    "--submission_path",
    "--split",
    "--display",
    "--pretrained_refvos",
    "--ck_pretrained_refvos",
    "--refer_data_root",
    "--refer_dataset",
    "--splitBy",
    "--davis_data_root",
    "--davis_annotations_file",
    "--emb_type",
    "--a2d_data_root",
    "--size_a2d_x",
    "--size_a2d_y",
    "--a2d_annotations_file",
]
CASES = [
    (command, flag, example, outcome)
    for flag, example, _, train, test in ORIGINAL_FLAGS
    for command, outcome in (("train", train), ("test", test))
]


def test_the_table_covers_every_flag_of_the_originals_args_py():
    assert [row[0] for row in ORIGINAL_FLAGS] == ARGS_PY
    assert all(
        outcome[0] in ("same", "mapped", "refused", "ignored") and row[2]
        for row in ORIGINAL_FLAGS
        for outcome in row[3:]
    )


def _argv(command: str, flag: str, example: str | None) -> list[str]:
    argv = [command] + ([] if flag == "--resume" or command == "train" else ["--resume", "c.pth"])
    return argv + [flag] + ([] if example is None else [example])


@pytest.mark.parametrize(
    "command, flag, example, outcome", CASES, ids=[f"{c} {f}" for c, f, _, _ in CASES]
)
def test_original_flag(command, flag, example, outcome, capsys):
    argv = _argv(command, flag, example)
    kind = outcome[0]
    if kind == "refused":
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and flag in err and outcome[1] in err, err
        assert "usage:" not in err
        return
    args = parse(argv)
    if kind == "same":
        assert getattr(args, outcome[1]) == outcome[2]
    elif kind == "mapped":
        assert outcome[1](args), outcome[2]
    else:  # ignored: parsed into a hidden attribute, which nothing reads
        assert flag in IGNORED or flag in ACCEPTED.get(command, ())
        assert outcome[1] in IGNORED.get(flag, outcome[1])


def test_base_size_keeps_the_originals_factor_and_refvos_spelling_does_not(capsys):
    """``--base_size 520`` trains at 416 as the original's train.py (int(0.8 * 520)); refvos's
    ``--base-size 520`` at 520; both at once are refused."""
    assert base_side(parse(["train", "--base_size", "520"])) == 416
    assert base_side(parse(["train", "--base-size", "520"])) == 520
    assert base_side(parse(["train"])) == 416
    assert main(["train", "--base_size", "520", "--base-size", "416"]) == 2
    assert "int(0.8 * N)" in capsys.readouterr().err


@pytest.mark.parametrize("line", README_LINES)
def test_original_readme_lines_parse(line):
    args = parse(line.split())
    assert args.command == line.split()[0]


@pytest.mark.parametrize("command", ["test", "predict", "export", "serve", "export-original"])
def test_one_name_for_the_model_file(command):
    extra = {
        "predict": ["--image", "a.jpg", "-e", "x"],
        "export": ["--out", "m.onnx"],
        "export-original": ["--out", "o.pth"],
    }.get(command, [])
    args = parse([command, "--checkpoint", "c.pth", *extra])
    value = args.checkpoint_flag if command == "export-original" else args.checkpoint
    assert value == "c.pth"


def test_train_resume_of_an_original_format_file_names_pretrained_refvos(
    refcoco_root, tiny_checkpoint, tmp_path, capsys
):
    """The original's train.py --resume restarted from epoch 0 with a file's weights; refvos's
    continues a refvos run, so a file in the original's format is refused, naming the flag that
    starts from it."""
    import argparse

    import torch

    from refvos.checkpoint import read_checkpoint
    from tests.helpers import train_argv

    ckpt = read_checkpoint(tiny_checkpoint)
    original = tmp_path / "model_best_x.pth"  # the original's layout: no "format", args a Namespace
    torch.save(
        {
            "model": ckpt["model"],
            "bert_model": ckpt["bert_model"],
            "epoch": 3,
            "args": argparse.Namespace(dataset="refcoco"),
        },
        original,
    )
    assert main(train_argv(refcoco_root, tmp_path, "--resume", str(original))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pretrained_refvos --ck_pretrained_refvos" in err[0]
