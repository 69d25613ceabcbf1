"""RefVOS's "BERT pre-train": masked-language-model fine-tuning of BERT on training expressions.

:func:`pretrain_bert` fine-tunes a transformers ``BertForMaskedLM`` (its encoder initialised
from a hub name, a ``save_pretrained`` directory, the shipped MiniLM ``"minilm-l6"``, or a random
``text_config``) on expressions with BERT's masking (as transformers'
``DataCollatorForLanguageModeling``): 15% of the real (non-special, non-padding) tokens are
chosen; of those 80% become ``[MASK]``, 10% a random token and 10% stay; the loss is the
cross-entropy on the chosen tokens only. AdamW, linearly decaying learning rate.

The result is written (atomically: a temporary folder, then a rename) as a ``save_pretrained``
**BertModel** directory, pooler included, plus the tokenizer's ``vocab.txt`` -- what
``refvos train --ck_bert DIR`` and ``build_model(..., text_encoder=DIR)`` take. The MLM
head is saved apart in ``mlm_head.pt`` so that pretraining can continue from the directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.base import dataset_expressions
from ..deps import require
from ..errors import InputError, RefVOSError
from ..io import atomic_write_json, check_output_folder
from ..io.checkpoint_checks import check_archives_in
from ..modeling.text_encoder import SHIPPED_MINILM, bert_config, shipped_minilm_path
from ..tokenization import get_tokenizer, truncation_note, truncation_report

IGNORE_LABEL = -100
OUTPUT_MARKER = (
    "pretrain_bert.json"  # in every folder pretrain_bert writes: the one kind it replaces
)


def training_expressions(dataset: torch.utils.data.Dataset) -> list[str]:
    """Distinct expressions of a referring Dataset, in order (no image is read).

    Works on :class:`~refvos.data.base.ReferringDataset` and ``Subset`` / ``ConcatDataset`` of them.
    """
    expressions = dataset_expressions(dataset)
    if expressions is None:
        raise InputError(f"cannot read expressions from a {type(dataset).__name__}")
    return expressions


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: Sequence[int],
    vocab_size: int,
    mask_token_id: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: ``(B, T)`` ids and attention mask -> masked ids and labels ``(B, T)``.

    Labels are the original ids at the chosen positions and -100 elsewhere. Each expression has
    at least one chosen token (the 15% draw is repeated on rows where it picked none).
    """
    ids = input_ids.clone()
    candidates = attention_mask.bool() & ~torch.isin(ids, torch.tensor(list(special_ids)))
    chosen = (torch.rand(ids.shape, generator=generator) < probability) & candidates
    # rows without a chosen token: choose one candidate at random (short expressions)
    empty = ~chosen.any(1) & candidates.any(1)
    if empty.any():
        scores = torch.rand(ids.shape, generator=generator).masked_fill(~candidates, -1)
        pick = scores.argmax(1)
        rows = empty.nonzero().squeeze(1)
        chosen[rows, pick[rows]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_LABEL))
    r = torch.rand(ids.shape, generator=generator)
    ids[chosen & (r < 0.8)] = mask_token_id
    random_pos = chosen & (r >= 0.8) & (r < 0.9)
    ids[random_pos] = torch.randint(vocab_size, ids.shape, generator=generator)[random_pos]
    return ids, labels


def load_masked_lm(source: str | os.PathLike | None, text_config: dict[str, Any] | None = None):
    """``(BertForMaskedLM, pooler state dict or None)`` from a hub name, a directory, ``"minilm-l6"``
    or ``None`` (random, shaped by ``text_config``)."""
    require("transformers", "refvos pretrain-bert")
    from transformers import BertForMaskedLM, BertModel
    from transformers.utils import logging as hf_logging

    if source is None:
        if text_config is None:
            raise InputError("a random BERT (--bert none) needs --text-config")
        return BertForMaskedLM(bert_config(text_config)), None
    hf_logging.disable_progress_bar()
    path = shipped_minilm_path() if str(source) == SHIPPED_MINILM else source
    if Path(path).is_dir():
        check_archives_in(
            path
        )  # pytorch_model.bin, mlm_head.pt: no compressed records (see checkpoint_checks)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights newly initialised" is expected for the MLM head
    try:
        mlm = BertForMaskedLM.from_pretrained(str(path))
        head = Path(path) / "mlm_head.pt"
        if head.is_file():  # a directory written by pretrain_bert
            mlm.cls.load_state_dict(
                torch.load(head, map_location="cpu", weights_only=True), strict=False
            )
        pooler = BertModel.from_pretrained(str(path), add_pooling_layer=True).pooler.state_dict()
    except OSError as e:
        raise RefVOSError(
            f"cannot load BERT {str(source)!r}: {str(e).splitlines()[0]}. Offline, pass a local "
            f"save_pretrained directory or {SHIPPED_MINILM!r}."
        ) from e
    finally:
        hf_logging.set_verbosity(verbosity)
    return mlm, pooler


def _mlm_loss(mlm, ids, att, labels) -> torch.Tensor:
    return mlm(input_ids=ids, attention_mask=att, labels=labels).loss


def evaluation_loss(
    mlm,
    ids: torch.Tensor,
    att: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> float:
    """Mean MLM loss over a fixed masking (eval mode, no dropout), weighted by masked tokens."""
    was = mlm.training
    mlm.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            lab = labels[i : i + batch_size].to(device)
            n = int((lab != IGNORE_LABEL).sum())
            if n:
                total += (
                    float(
                        _mlm_loss(
                            mlm,
                            ids[i : i + batch_size].to(device),
                            att[i : i + batch_size].to(device),
                            lab,
                        )
                    )
                    * n
                )
                count += n
    mlm.train(was)
    return total / max(count, 1)


def save_bert_directory(
    mlm,
    pooler: dict[str, torch.Tensor] | None,
    vocab_file: str | os.PathLike,
    out: str | os.PathLike,
    summary: dict[str, Any],
) -> Path:
    """Write ``out`` atomically: BertModel (``save_pretrained``), ``vocab.txt``, ``mlm_head.pt``,
    ``pretrain_bert.json``. An existing ``out`` is replaced only when it is empty or an output of
    this function (it holds ``pretrain_bert.json``); any other folder is refused (InputError)."""
    from transformers import BertModel

    out = check_output_folder(
        out, "out", owned_by=OUTPUT_MARKER
    )  # never replace a folder it did not write
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        encoder = BertModel(mlm.config, add_pooling_layer=True)
        missing, unexpected = encoder.load_state_dict(mlm.bert.state_dict(), strict=False)
        if pooler is not None:
            encoder.pooler.load_state_dict(pooler)
        encoder.save_pretrained(str(tmp))
        shutil.copyfile(vocab_file, tmp / "vocab.txt")
        (tmp / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"})
        )
        torch.save({k: v.clone() for k, v in mlm.cls.state_dict().items()}, tmp / "mlm_head.pt")
        atomic_write_json(tmp / OUTPUT_MARKER, summary)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def pretrain_bert(
    expressions: Sequence[str],
    out: str | os.PathLike,
    bert: str | os.PathLike | None = "bert-base-uncased",
    text_config: dict[str, Any] | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    mlm_probability: float = 0.15,
    max_tokens: int = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``bert`` with masked-LM on ``expressions``; write the directory ``out``.

    Returns ``{"epochs": [{"epoch", "loss"}], "eval_loss_before", "eval_loss_after", "out"}``;
    the evaluation loss is on one fixed masking of the expressions (drawn from ``seed``).
    """
    from transformers import get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    from .logger import MetricLogger

    hf_logging.disable_progress_bar()

    check_output_folder(out, "out", owned_by=OUTPUT_MARKER)  # before any work
    expressions = [e for e in expressions if e and e.strip()]
    if not expressions:
        raise InputError("no expression to pretrain on")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 0 < mlm_probability < 1:
        raise InputError(f"--mlm-probability must be in (0, 1), got {mlm_probability}")
    device = torch.device(device)
    torch.manual_seed(seed)
    mlm, pooler = load_masked_lm(bert, text_config)
    local_vocab = (
        Path(str(bert)) / "vocab.txt" if bert is not None and Path(str(bert)).is_dir() else None
    )
    tok = get_tokenizer(local_vocab if local_vocab is not None and local_vocab.is_file() else None)
    if tok.vocab_size > mlm.config.vocab_size:
        raise InputError(
            f"the vocabulary ({tok.vocab_size} tokens) is larger than the BERT's "
            f"({mlm.config.vocab_size})"
        )
    truncation = truncation_report(expressions, max_tokens, tok.vocab_file)
    if (note := truncation_note(truncation)) is not None:
        print(note, file=sys.stderr, flush=True)
    ids, att = tok.encode(list(expressions), max_tokens)
    special = [tok.cls_token_id, tok.sep_token_id, tok.pad_token_id]
    mlm.to(device).train()

    fixed = torch.Generator().manual_seed(seed + 1)
    eval_ids, eval_labels = mask_tokens(
        ids, att, special, mlm.config.vocab_size, tok.mask_token_id, mlm_probability, fixed
    )
    before = evaluation_loss(mlm, eval_ids, att, eval_labels, batch_size, device)

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in mlm.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": weight_decay,
        },
        {
            "params": [p for n, p in mlm.named_parameters() if n.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    steps_per_epoch = math.ceil(len(ids) / batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps_per_epoch * epochs)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        order = torch.randperm(len(ids), generator=gen)
        logger = MetricLogger(progress=progress)
        for i in logger.log_every(
            range(0, len(ids), batch_size), header=f"MLM epoch [{epoch}]", total=steps_per_epoch
        ):
            rows = order[i : i + batch_size]
            masked, labels = mask_tokens(
                ids[rows],
                att[rows],
                special,
                mlm.config.vocab_size,
                tok.mask_token_id,
                mlm_probability,
                gen,
            )
            loss = _mlm_loss(mlm, masked.to(device), att[rows].to(device), labels.to(device))
            if not torch.isfinite(loss):
                raise RefVOSError(f"MLM loss became {loss.item()} at epoch {epoch}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            logger.update(loss=loss.item(), lr=scheduler.get_last_lr()[0])
        history.append({"epoch": epoch, "loss": logger.loss.global_avg})
    after = evaluation_loss(mlm, eval_ids, att, eval_labels, batch_size, device)
    summary = {
        "source": str(bert) if bert is not None else None,
        "expressions": len(expressions),
        "epochs": history,
        "eval_loss_before": before,
        "eval_loss_after": after,
        "lr": lr,
        "batch_size": batch_size,
        "mlm_probability": mlm_probability,
        "max_tokens": max_tokens,
        "truncation": truncation,
        "seed": seed,
    }
    with contextlib.suppress(AttributeError):
        mlm.to("cpu")
    save_bert_directory(mlm, pooler, tok.vocab_file, out, summary)
    return {**summary, "out": str(out)}
