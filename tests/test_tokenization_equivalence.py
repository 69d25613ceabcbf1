"""refvos's tokenizer (built on the ``tokenizers`` library, no transformers import) gives id for
id what transformers' ``BertTokenizer(vocab, do_lower_case=True)`` gives -- the tokenizer the
authors' code and the released checkpoints used -- on RefVOS's own expressions, the synthetic
data's and hand-picked edge cases, uncut and under both truncation rules."""

from __future__ import annotations

import numpy as np
import pytest

from refvos.data import scenes
from refvos.data.annotations import load_augmented_expressions, load_categorization
from refvos.tokenization import get_tokenizer, shipped_vocab_path
from tests.helpers import shared_dataset_file

EDGE_CASES = [
    "",
    "   ",
    "the man on the left",
    "THE MAN ON THE LEFT",
    "Café crème, naïve façade, Ångström, São Paulo",  # accents stripped after lower-casing
    "Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ",
    "the 猫 on the 沙发 (sofa)",  # CJK characters become words of their own
    "한국어 텍스트 and ひらがな",
    "man,woman;dog:cat!?...\"quoted\" (paren) [bracket] {brace} <angle> a/b a\\b a-b a_b",
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
        texts |= {r.expression for r in load_categorization(shared_dataset_file("RE_categorization", name))}
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
            standard = reference.encode(text, add_special_tokens=True, truncation=True, max_length=limit)
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
        reference.pad_token_id, reference.cls_token_id, reference.sep_token_id, reference.mask_token_id)
    assert tok.vocab_size == len(reference) == 30522
    assert tok.word_pieces("unaffable") == reference.tokenize("unaffable")
