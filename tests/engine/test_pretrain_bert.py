"""Masked-LM pretraining reports the expressions cut at the token limit: a note on stderr with
examples, and ``truncation`` in the summary it returns and writes (pretrain_bert.json)."""

import json

from refvos.engine.pretrain_bert import pretrain_bert
from refvos.tokenization import get_tokenizer
from tests.helpers import TINY_TEXT_CONFIG

EXPRESSIONS = [
    "the red circle",
    "the big blue square on the left of the green star",
    "a dog",
    "the small yellow triangle below the red circle",
]


def test_pretraining_reports_expressions_over_the_token_limit(tmp_path, capsys):
    out = tmp_path / "bert"
    result = pretrain_bert(
        EXPRESSIONS,
        out,
        bert=None,
        text_config=TINY_TEXT_CONFIG,
        epochs=1,
        batch_size=2,
        max_tokens=6,
    )
    tok = get_tokenizer()
    over = [e for e in EXPRESSIONS if tok.count_tokens(e) > 6]
    report = result["truncation"]
    assert report["token_limit"] == 6 and report["distinct_expressions"] == 4
    assert report["over_token_limit"] == len(over) == 2
    assert {e["expression"] for e in report["examples"]} == set(over)
    assert json.loads((out / "pretrain_bert.json").read_text())["truncation"] == report
    (note,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert "2 of 4 distinct expressions are longer than 6 tokens" in note
