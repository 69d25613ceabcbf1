"""The trainer reports the expressions cut at the token limit: a note on stderr with examples
and a ``truncation`` event in log.jsonl, for the training and the validation set."""

import json

import torch

from refvos.data import build_dataset
from refvos.engine.trainer import Trainer
from tests.engine.test_trainer import config, train_subset, val_subset
from tests.helpers import IMAGE_SIZE, make_tiny_model


def test_training_logs_expressions_over_the_token_limit(refcoco_root, tmp_path, capsys):
    train = build_dataset("refcoco", refcoco_root, "train", "train", base_size=IMAGE_SIZE,
                          crop_size=IMAGE_SIZE, max_tokens=4)
    train = torch.utils.data.Subset(train, range(4))
    Trainer(make_tiny_model(max_tokens=4), train, config(tmp_path, epochs=1),
            val_set=val_subset(refcoco_root)).fit()
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    (event,) = [e for e in events if e["kind"] == "truncation"]
    assert event["training"]["token_limit"] == 4 and event["training"]["over_token_limit"] > 0
    assert event["training"]["examples"][0]["tokens"] > 4
    assert event["validation"]["token_limit"] == 20 and event["validation"]["over_token_limit"] == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "distinct training expressions are longer than 4 tokens" in notes[0]
    assert repr(event["training"]["examples"][0]["expression"]) in notes[0]


def test_nothing_over_the_limit_logs_zero_and_prints_nothing(refcoco_root, tmp_path, capsys):
    trainer = Trainer(make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path, epochs=1))
    trainer.report_truncation()
    (event,) = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert event["kind"] == "truncation" and set(event) >= {"training"} and "validation" not in event
    assert event["training"]["over_token_limit"] == 0
    assert "note:" not in capsys.readouterr().err
