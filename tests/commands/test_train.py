"""``refvos train`` end to end on synthetic RefCOCO, and under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from refvos.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from refvos.cli import main
from tests.helpers import IMAGE_SIZE, REPO_ROOT, TINY_MODEL_ARGS, make_tiny_model, train_argv


@pytest.mark.slow
def test_train_cli_resume_auto(refcoco_root, tmp_path, capsys):
    assert main(train_argv(refcoco_root, tmp_path, "--epochs", "1", "--schedule", "refcoco")) == 0
    run = tmp_path / "run"
    ckpt = read_checkpoint(run / "last.pth")
    assert ckpt["epoch"] == 1 and ckpt["args"]["dataset"] == "refcoco"
    assert (
        ckpt["lr_scheduler"]["name"] == "refcoco"
        and ckpt["optimizer"]["param_groups"][0]["lr"] == 0.01
    )
    assert (run / "best.pth").is_file() and (run / "log.jsonl").is_file()
    # --resume auto continues the run to a second epoch (refcoco recipe: 0.0096), reading last.pth once
    from refvos import checkpoint

    reads, read = [], checkpoint.read_checkpoint
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            checkpoint,
            "read_checkpoint",
            lambda path, *a, **k: reads.append(path) or read(path, *a, **k),
        )
        assert (
            main(
                train_argv(
                    refcoco_root,
                    tmp_path,
                    "--epochs",
                    "2",
                    "--schedule",
                    "refcoco",
                    "--resume",
                    "auto",
                )
            )
            == 0
        )
    assert reads == [run / "last.pth"]
    ckpt = read_checkpoint(run / "last.pth")
    assert ckpt["epoch"] == 2 and ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        0.0096
    )
    assert "resuming from" in capsys.readouterr().out


def test_train_cli_errors(refcoco_root, tmp_path, capsys):
    assert main(train_argv(refcoco_root, tmp_path, "--ck_pretrained_refvos", "x.pth")) == 2
    assert "--pretrained_refvos" in capsys.readouterr().err
    assert main(train_argv(refcoco_root, tmp_path, "--batch-size", "1")) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main(train_argv(refcoco_root, tmp_path, "--resume", str(tmp_path / "nope.pth"))) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(train_argv(refcoco_root, tmp_path, "--fixed_lr", "--schedule", "a2d")) == 2
    assert "--fixed_lr is --schedule fixed" in capsys.readouterr().err
    assert main(train_argv(refcoco_root, tmp_path, "--lr_specific", "0.5")) == 2
    assert "--lr_specific is the factor of the fixed schedule" in capsys.readouterr().err


def test_train_cli_pretrained_refvos(refcoco_root, tmp_path, capsys):
    init = make_tiny_model(seed=5)
    init.config.truncation = "original"  # e.g. a released A2D / DAVIS model
    src = save_checkpoint(tmp_path / "init.pth", init)
    args = train_argv(
        refcoco_root,
        tmp_path,
        "--epochs",
        "1",
        "--pretrained_refvos",
        "--ck_pretrained_refvos",
        str(src),
    )
    args = [a for a in args if a not in TINY_MODEL_ARGS]  # the network comes from the checkpoint
    assert main(args) == 0
    last = read_checkpoint(tmp_path / "run" / "last.pth")
    assert last["config"]["text_config"]["hidden_size"] == 64
    # the run keeps the starting checkpoint's tokenisation rule and records it
    assert last["config"]["truncation"] == "original" and last["args"]["truncation"] == "original"
    assert load_checkpoint(tmp_path / "run" / "last.pth").config.legacy_truncation
    # the checkpoint records the size it was evaluated at (the 48-pixel val images): predict uses it
    assert last["config"]["input_size"] == IMAGE_SIZE
    # best.pth: weights (and what was selected), not the optimizer state that only resuming needs
    best = read_checkpoint(tmp_path / "run" / "best.pth")
    assert "optimizer" not in best and "rng" not in best and best["best"]["epoch"] == 0
    assert all(torch.equal(v, last["model"][k]) for k, v in best["model"].items())
    out = capsys.readouterr().out
    val = last["history"][0]["val"]
    # every epoch's validation metrics on the console, as fractions like log.jsonl
    assert "epoch 0: loss" in out and f"val overall iou {val['overall_iou']:.4f}" in out
    assert f"log: {tmp_path / 'run' / 'log.jsonl'}" in out
    assert f"tensorboard --logdir {tmp_path / 'run' / 'tensorboard'}" in out


def test_train_cli_original_flags_truncation_and_fixed_lr(refcoco_root, tmp_path, capsys):
    assert (
        main(
            train_argv(
                refcoco_root,
                tmp_path,
                "--epochs",
                "1",
                "--truncation",
                "original",
                "--fixed_lr",
                "--lr",
                "1",
                "--lr_specific",
                "3e-5",
            )
        )
        == 0
    )
    ckpt = read_checkpoint(tmp_path / "run" / "last.pth")
    assert ckpt["config"]["truncation"] == "original"
    assert (
        ckpt["lr_scheduler"]["name"] == "fixed"
        and ckpt["optimizer"]["param_groups"][0]["lr"] == 3e-5
    )
    assert (
        main(
            train_argv(
                refcoco_root,
                tmp_path,
                "--epochs",
                "2",
                "--resume",
                "auto",
                "--truncation",
                "standard",
            )
        )
        == 2
    )
    assert "trained with --truncation original, not standard" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(refcoco_root, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "refvos",
        *train_argv(refcoco_root, out, "--epochs", "1", "-b", "2"),
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = out / "run"
    ckpt = read_checkpoint(run / "last.pth")
    assert ckpt["args"]["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert ckpt["iteration"] == ckpt["history"][0]["iteration"] > 0
    assert sorted(p.name for p in run.glob("*.pth")) == ["best.pth", "last.pth"]
    assert not list(run.glob(".*.tmp"))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in log].count("epoch") == 1 and [e["kind"] for e in log].count(
        "start"
    ) == 1
    assert proc.stdout.count("done:") == 1  # rank 0 reports once


def test_train_cli_a2d_query_is_recorded_and_kept_on_resume(tiny_synthetic, tmp_path, capsys):
    """--a2d-query original trains on the cut queries and is recorded; resuming keeps the rule."""
    a2d = ["--dataset", "a2d", "--data-root", str(tiny_synthetic["a2d"])]
    assert (
        main(
            train_argv(
                tiny_synthetic["refcoco"],
                tmp_path,
                *a2d,
                "--epochs",
                "1",
                "--a2d-query",
                "original",
            )
        )
        == 0
    )
    assert read_checkpoint(tmp_path / "run" / "last.pth")["args"]["a2d_query"] == "original"
    assert (
        main(
            train_argv(
                tiny_synthetic["refcoco"],
                tmp_path,
                *a2d,
                "--epochs",
                "2",
                "--resume",
                "auto",
                "--a2d-query",
                "full",
            )
        )
        == 2
    )
    assert "was trained with --a2d-query original, not full" in capsys.readouterr().err
    # the flag belongs to A2D: refused for another data set before anything is built
    assert main(train_argv(tiny_synthetic["refcoco"], tmp_path / "x", "--a2d-query", "full")) == 2
    assert "--a2d-query applies to A2D-Sentences" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_cli_a2d_query_reaches_the_training_set(tiny_synthetic, tmp_path, monkeypatch):
    import refvos.commands.train as train_command
    from refvos.cli import parse

    seen = {}

    def datasets(args, root, opts, selection="refvos"):
        seen.update(opts)
        raise SystemExit(0)  # stop before the model is built

    monkeypatch.setattr(train_command, "datasets", datasets)
    for extra, rule in (([], "full"), (["--a2d-query", "original"], "original")):
        argv = train_argv(tiny_synthetic["a2d"], tmp_path, "--dataset", "a2d", *extra)
        with pytest.raises(SystemExit):
            train_command.run(parse(argv))
        assert seen["query_rule"] == rule
