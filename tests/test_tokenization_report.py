"""The report of expressions longer than the token limit that train, test and pretrain-bert log."""

from refvos.tokenization import get_tokenizer, truncation_note, truncation_report


def test_report_counts_distinct_expressions_over_the_limit_longest_first():
    tok = get_tokenizer()
    texts = ["the dog", "the man in the red shirt on the left", "the dog",
             "the tall man in the red shirt standing on the left of the dog", "a big black cat sitting"]
    report = truncation_report(texts, max_tokens=6, examples=2)
    lengths = {t: tok.count_tokens(t) for t in texts}
    over = [t for t in dict.fromkeys(texts) if lengths[t] > 6]
    assert report["token_limit"] == 6 and report["distinct_expressions"] == 4
    assert report["over_token_limit"] == len(over) == 3
    longest = sorted(over, key=lambda t: -lengths[t])[:2]
    assert report["examples"] == [{"expression": t, "tokens": lengths[t]} for t in longest]
    assert truncation_report(texts, max_tokens=20)["over_token_limit"] == 0


def test_note_names_the_count_the_limit_and_examples():
    report = truncation_report(["a b c d e f g h", "x y"], max_tokens=5)
    note = truncation_note(report, "training")
    assert note.startswith("note: 1 of 2 distinct training expressions are longer than 5 tokens")
    assert "'a b c d e f g h' (10 tokens)" in note and "first 5" in note
    assert truncation_note(truncation_report(["x y"], max_tokens=5)) is None
