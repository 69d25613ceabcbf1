"""``refvos pretrain-bert``: masked-LM fine-tuning of BERT on a data set's training expressions.

RefVOS's "BERT pre-train" (not in the original repository): the output directory is a
``save_pretrained`` BertModel with its ``vocab.txt``, for ``refvos train --ck_bert DIR``::

    refvos pretrain-bert --dataset refcoco --refer_data_root refer/data --out bert_refcoco
    refvos train --dataset refcoco --ck_bert bert_refcoco ...
"""

from __future__ import annotations

import argparse

from .checks import add_device_argument, parse_text_config
from .data_args import (
    MAX_TOKENS,
    a2d_query_options,
    a2d_query_rule,
    add_a2d_query_argument,
    add_data_arguments,
    data_root,
    split_options,
)

HELP = "fine-tune BERT as a masked language model on training expressions (for --ck_bert)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    add_a2d_query_argument(p)
    p.add_argument(
        "--out",
        required=True,
        help="output directory; an existing one is replaced atomically only when it is empty or an "
        "earlier pretrain-bert output (it holds pretrain_bert.json), else refused",
    )
    p.add_argument(
        "--bert",
        default="bert-base-uncased",
        help="starting BERT: hub name (default bert-base-uncased), save_pretrained directory, "
        "'minilm-l6' (shipped) or 'none' (random, shaped by --text-config)",
    )
    p.add_argument(
        "--text-config", help="BertConfig fields for --bert none (JSON file or inline JSON)"
    )
    p.add_argument("--epochs", type=int, default=3, help="default 3")
    p.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=32, help="default 32")
    p.add_argument(
        "--lr",
        type=float,
        default=5e-5,
        help="AdamW learning rate, decayed linearly (default 5e-5)",
    )
    p.add_argument("--weight-decay", type=float, default=0.01, help="default 0.01")
    p.add_argument(
        "--mlm-probability", type=float, default=0.15, help="masked token fraction (default 0.15)"
    )
    p.add_argument(
        "--max-tokens", type=int, help="token limit (default: 20 for RefCOCO, 10 for A2D / DAVIS)"
    )
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..data import build_dataset
    from ..engine.pretrain_bert import OUTPUT_MARKER, pretrain_bert, training_expressions
    from ..errors import InputError
    from ..io import check_output_folder
    from ..runtime import resolve_device

    bert = None if args.bert.lower() == "none" else args.bert
    if args.text_config and bert is not None:
        raise InputError("--text-config shapes a random BERT: use it with --bert none")
    text_config = parse_text_config(args.text_config)
    check_output_folder(args.out, "--out", inputs=[data_root(args)], owned_by=OUTPUT_MARKER)
    dataset = build_dataset(
        args.dataset,
        data_root(args),
        "train",
        "eval",
        **split_options(args),
        **a2d_query_options(a2d_query_rule(args)),
    )
    expressions = training_expressions(dataset)
    max_tokens = args.max_tokens or MAX_TOKENS[args.dataset]
    print(f"{len(expressions)} distinct training expressions of {args.dataset}", flush=True)
    result = pretrain_bert(
        expressions,
        args.out,
        bert=bert,
        text_config=text_config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        mlm_probability=args.mlm_probability,
        max_tokens=max_tokens,
        seed=args.seed,
        device=resolve_device(args.device),
        progress=True,
    )
    for h in result["epochs"]:
        print(f"epoch {h['epoch']}: MLM loss {h['loss']:.4f}")
    print(
        f"held-out masking loss {result['eval_loss_before']:.4f} -> {result['eval_loss_after']:.4f}; "
        f"wrote {args.out} (use it with --ck_bert {args.out})"
    )
    return 0
