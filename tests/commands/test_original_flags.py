"""The original RefVOS's command lines (its README and args.py, shared by train.py and test.py):
each flag either works or stops with one line naming its counterpart."""

from __future__ import annotations

import pytest

from refvos.cli import main, parse

# The command lines of the original README, as typed (python3 train.py -> refvos train).
README_LINES = [
    "train --dataset refcoco --model_id model",
    "train --dataset refcoco --model_id model_pretrained_bert --ck_bert ./checkpoints_bert/bert_pretrained_refcoco",
    "train --dataset a2d --model_id a2d_model --pretrained_refvos --ck_pretrained_refvos ./checkpoints/model_refcoco.pth",
    "test --dataset refcoco --resume ./checkpoints/model_refcoco.pth --split val",
    "test --dataset refcoco --resume ./checkpoints/model_refcoco.pth --split val --display",
]

# (command line, destination, value): the original's flags that work here
WORKS = [
    ("train --model_id m", "model_id", "m"),
    ("train --model deeplabv3_resnet101", "model", "deeplabv3_resnet101"),
    ("train -b 6", "batch_size", 6),
    ("train --batch-size 6", "batch_size", 6),
    ("train --base_size 520", "base_size", 520),
    ("train --crop_size 480", "crop_size", 480),
    ("train --epochs 30", "epochs", 30),
    ("train -j 16", "workers", 16),
    ("train --workers 16", "workers", 16),
    ("train --lr 0.01", "lr", 0.01),
    ("train --fixed_lr", "fixed_lr", True),
    ("train --lr_specific 3e-5", "lr_specific", 3e-5),
    ("train --momentum 0.9", "momentum", 0.9),
    ("train --wd 1e-4", "weight_decay", 1e-4),
    ("train --weight-decay 1e-4", "weight_decay", 1e-4),
    ("train --print-freq 10", "print_freq", 10),
    ("train --output-dir ./checkpoints/", "output_dir", "./checkpoints/"),
    ("train --device cuda", "device", "cuda"),
    ("train --resume ./checkpoints/model.pth", "resume", "./checkpoints/model.pth"),
    ("train --ck_bert bert", "ck_bert", "bert"),
    ("train --pretrained_refvos --ck_pretrained_refvos c.pth", "ck_pretrained_refvos", "c.pth"),
    ("train --refer_data_root ./datasets/refer/data/", "refer_data_root", "./datasets/refer/data/"),
    ("train --splitBy unc", "splitBy", "unc"),
    ("train --davis_data_root ./datasets/davis2017", "davis_root", "./datasets/davis2017"),
    ("train --a2d_data_root ./datasets/Release/", "a2d_root", "./datasets/Release/"),
    ("train --local_rank 0", "_original_local_rank", "0"),
    ("train --multiply_feats", "_original_multiply_feats", True),
    ("test --resume c.pth", "checkpoint", "c.pth"),
    ("test --checkpoint c.pth", "checkpoint", "c.pth"),
    ("test --resume c.pth --split testA", "split", "testA"),
    ("test --resume c.pth --display", "display", True),
    ("test --resume c.pth --results_folder ./results/", "output_dir", "./results/"),
    ("test --resume c.pth --submission_path ./results_submission/", "submission", "./results_submission/"),
    ("test --resume c.pth -b 1", "batch_size", 1),
    ("test --resume c.pth -j 4", "workers", 4),
    ("test --resume c.pth --device cuda", "device", "cuda"),
    ("test --resume c.pth --dataset davis --davis_data_root ./datasets/davis2017", "davis_root",
     "./datasets/davis2017"),
    ("test --resume c.pth --dataset a2d --a2d_data_root ./datasets/Release/", "a2d_root", "./datasets/Release/"),
    ("test --resume c.pth --test-only", "_original_test_only", True),
]

# (command line, words the one-line pointer must contain)
POINTS = [
    ("train --test-only", "refvos test --checkpoint"),
    ("train --aux-loss", "auxiliary"),
    ("train --pretrained", "--backbone-weights"),
    ("train --optimizer sgd", "SGD"),
    ("train --addition", "multiplication"),
    ("test --resume c.pth --fixed_lr", "--schedule fixed"),
    ("train --linear_lr", "--schedule"),
    ("test --resume c.pth --lr_specific 3e-5", "refvos train"),
    ("train --lr_specific_decrease 0.001", "--schedule"),
    ("train --baseline_bilstm", "BiLSTM"),
    ("train --load_optimizer", "--resume"),
    ("train --bert_tokenizer bert-base-uncased", "tokenizer"),
    ("train --glove_dict g.txt", "GloVe"),
    ("train --refer_dataset refcoco", "--dataset"),
    ("train --davis_annotations_file a.txt", "--davis_root"),
    ("train --emb_type first_mask", "--expressions"),
    ("train --a2d_annotations_file a.txt", "--a2d_root"),
    ("train --size_a2d_x 240", "own size"),
    ("train --size_a2d_y 427", "own size"),
    ("train --results_folder r", "refvos test --output-dir"),
    ("train --submission_path s", "refvos test --submission"),
    ("train --split val", "refvos test --split"),
    ("train --display", "refvos test --display"),
    ("test --resume c.pth --model_id m", "--output-dir"),
    ("test --resume c.pth --model deeplabv3_resnet101", "checkpoint"),
    ("test --resume c.pth --ck_bert bert-base-uncased", "checkpoint"),
    ("test --resume c.pth --base_size 520", "own size"),
    ("test --resume c.pth --lr 0.01", "refvos train"),
    ("test --resume c.pth --pretrained_refvos", "refvos train"),
    ("test --resume c.pth --emb_type full_video", "--expressions"),
]


@pytest.mark.parametrize("line", README_LINES)
def test_original_readme_lines_parse(line):
    args = parse(line.split())
    assert args.command == line.split()[0]


@pytest.mark.parametrize("line, dest, value", WORKS)
def test_original_flag_works(line, dest, value):
    argv = line.split()
    if argv[0] == "predict":
        argv += ["--image", "a.jpg", "-e", "x"]
    assert getattr(parse(argv), dest) == value


@pytest.mark.parametrize("line, words", POINTS)
def test_original_flag_points_to_its_counterpart(line, words, capsys):
    assert main(line.split()) == 2
    err = capsys.readouterr().err.strip()
    flag = next(t for t in line.split()[1:] if t.startswith("-") and t not in ("--resume",))
    assert len(err.splitlines()) == 1 and flag in err and words in err, err
    assert "usage:" not in err


@pytest.mark.parametrize("command", ["test", "predict", "export", "serve", "export-original"])
def test_one_name_for_the_model_file(command):
    extra = {"predict": ["--image", "a.jpg", "-e", "x"], "export": ["--out", "m.onnx"],
             "export-original": ["--out", "o.pth"]}.get(command, [])
    args = parse([command, "--checkpoint", "c.pth", *extra])
    value = args.checkpoint_flag if command == "export-original" else args.checkpoint
    assert value == "c.pth"
