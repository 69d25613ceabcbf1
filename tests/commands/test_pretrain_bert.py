"""``refvos pretrain-bert`` end to end on synthetic RefCOCO: the masked-LM loss falls and the
output folder is a text encoder for ``refvos train --ck_bert``."""

from __future__ import annotations

import json

import pytest

from refvos.checkpoint import read_checkpoint
from refvos.cli import main
from refvos.modeling import build_model
from tests.helpers import TINY_TEXT_CONFIG, train_argv


@pytest.mark.slow
def test_pretrain_bert_lowers_mlm_loss_and_loads_as_ck_bert(refcoco_root, tmp_path, capsys):
    out = tmp_path / "bert"
    assert (
        main(
            [
                "pretrain-bert",
                "--dataset",
                "refcoco",
                "--refer_data_root",
                str(refcoco_root),
                "--out",
                str(out),
                "--bert",
                "none",
                "--text-config",
                json.dumps(TINY_TEXT_CONFIG),
                "--epochs",
                "3",
                "-b",
                "16",
                "--lr",
                "3e-3",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    summary = json.loads((out / "pretrain_bert.json").read_text())
    losses = [e["loss"] for e in summary["epochs"]]
    assert losses[-1] < losses[0] and summary["eval_loss_after"] < summary["eval_loss_before"]
    assert (out / "vocab.txt").is_file() and (out / "config.json").is_file()
    model = build_model("refvos_lite", backbone_weights=None, text_encoder=out)
    assert model.config.text_config["hidden_size"] == 64
    # ... and through refvos train --ck_bert
    args = train_argv(refcoco_root, tmp_path, "--epochs", "1")
    i = args.index("--text-encoder")
    args = args[:i] + ["--ck_bert", str(out)] + args[i + 4 :]
    assert main(args) == 0
    ckpt = read_checkpoint(tmp_path / "run" / "last.pth")
    assert ckpt["args"]["vocab_file"] == str(out / "vocab.txt")
