"""``refvos train``'s checks of its arguments and what it builds from them: the network, the
training configuration, the data sets (the command itself: :mod:`refvos.commands.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .checks import parse_text_config
from .data_args import (
    MAX_TOKENS,
    a2d_query_rule,
    mask_rule_options,
)
from .recipe import (
    PAPER_SELECTION_SIZE,
)

MODELS = ("refvos_r101", "refvos_lite", "deeplabv3_resnet101")  # the last: the original's name
MODEL_ALIASES = {"deeplabv3_resnet101": "refvos_r101"}
# data set -> (split used for model selection, whether that split is the one results are reported on)
SELECTION_SPLIT = {
    "refcoco": ("val", False),
    "refcoco+": ("val", False),
    "refcocog": ("val", False),
    "a2d": ("test", True),
    "davis": ("val", True),
}
DEFAULT_TEXT_ENCODER = {"refvos_r101": "bert-base-uncased", "refvos_lite": "minilm-l6"}


def check_arguments(args: argparse.Namespace) -> None:
    from ..errors import InputError
    from ..io import check_output_folder

    if args.ck_pretrained_refvos and not args.pretrained_refvos:
        raise InputError("--ck_pretrained_refvos is only read with --pretrained_refvos")
    if args.pretrained_refvos and not args.ck_pretrained_refvos:
        raise InputError("--pretrained_refvos needs --ck_pretrained_refvos CKPT")
    if args.pretrained_refvos and args.resume:
        raise InputError(
            "--resume continues a run; --pretrained_refvos starts a new one: pass one of them"
        )
    if args.ck_bert and args.text_encoder:
        raise InputError("--ck_bert and --text-encoder both name the text encoder: pass one")
    if args.ck_bert and not Path(args.ck_bert).is_dir():
        raise InputError(
            f"--ck_bert {args.ck_bert}: not a directory (expected a save_pretrained BERT folder; "
            "a model hub name is --text-encoder NAME)"
        )
    if args.pretrained_refvos and (args.ck_bert or args.text_encoder):
        raise InputError(
            "--pretrained_refvos loads the text encoder from its checkpoint; "
            "drop --ck_bert / --text-encoder"
        )
    if args.text_config and (args.text_encoder or "").lower() != "none":
        raise InputError(
            "--text-config shapes a random text encoder: use it with --text-encoder none"
        )
    if args.fixed_lr and args.schedule not in (None, "fixed"):
        raise InputError(
            f"--fixed_lr is --schedule fixed; it cannot be combined with --schedule {args.schedule}"
        )
    if args.base_size is not None and args.original_base_size is not None:
        raise InputError(
            "--base-size N trains at N, --base_size N (the original's flag) at int(0.8 * N): "
            "pass one of them"
        )
    if args.original_base_size is not None and args.original_base_size < 10:
        raise InputError(
            "--base_size (the original's flag; training at int(0.8 * N)) must be at least 10"
        )
    if (args.base_size or 8) < 8 or args.crop_size < 8:
        raise InputError("--base-size and --crop-size must be at least 8 pixels")
    check_text_config(args)  # a JSON or BertConfig mistake: refused before anything is built
    a2d_query_rule(args)  # --a2d-query with another data set
    mask_rule_options(args)  # --refcoco-mask with another data set
    if args.a2d_repeats and args.dataset != "a2d":
        raise InputError(
            f"--a2d-repeats applies to A2D-Sentences (--dataset a2d), not {args.dataset}"
        )
    if not 0 <= args.seed < 2**32:
        raise InputError(f"--seed must be in 0..{2**32 - 1}, got {args.seed}")
    if args.resume and args.overwrite:
        raise InputError("--overwrite starts a new run; --resume continues one: pass one of them")
    check_output_folder(args.output_dir, "--output-dir")
    run_dir = (Path(args.output_dir) / args.model_id).resolve()
    if (
        Path(args.model_id).is_absolute()
        or not run_dir.is_relative_to(Path(args.output_dir).resolve())
        or run_dir == Path(args.output_dir).resolve()
    ):
        raise InputError(
            f"--model_id {args.model_id!r} must name a sub-folder of --output-dir {args.output_dir}"
        )


def check_text_config(args: argparse.Namespace) -> None:
    """``--text-config`` parses and, for a new run, passes the field checks a checkpoint's config
    passes when it is loaded (:meth:`RefVOSConfig.validate`, at the data set's token limit), so
    that no run trains a network whose checkpoints cannot be loaded."""
    from ..errors import InputError
    from ..modeling.config import VARIANT_BACKBONES, RefVOSConfig

    text = parse_text_config(args.text_config)
    if text is None or args.resume:
        return
    name = MODEL_ALIASES.get(args.model or "refvos_r101", args.model or "refvos_r101")
    if name not in VARIANT_BACKBONES:
        return  # an unknown --model is refused where the network is built
    try:  # the backbone's fields are placeholders: only the text encoder and token limit are judged here
        RefVOSConfig(
            variant=name,
            backbone=VARIANT_BACKBONES[name],
            backbone_channels=1,
            text_config=text,
            max_tokens=MAX_TOKENS[args.dataset],
        ).validate()
    except ValueError as e:
        raise InputError(
            f"--text-config: {e}; a checkpoint of that network could not be loaded"
        ) from e


def check_new_run(run_dir: Path, args: argparse.Namespace) -> None:
    """A new run must not silently replace a previous run's checkpoints."""
    from ..engine.trainer import BEST, LAST
    from ..errors import InputError

    existing = [name for name in (LAST, BEST) if (run_dir / name).exists()]
    if existing and not args.overwrite:
        raise InputError(
            f"{run_dir} already holds a run ({', '.join(existing)}); pass --resume auto to continue "
            "it, --overwrite to replace it, or another --model_id"
        )


def check_resume_matches(config, resume: Path, args: argparse.Namespace) -> None:
    """--model / --text-config given with --resume must describe the checkpoint's network."""
    from ..errors import InputError

    if args.model and MODEL_ALIASES.get(args.model, args.model) != config.variant:
        raise InputError(f"--resume {resume} holds a {config.variant}, not --model {args.model}")
    if args.text_config:
        wanted = parse_text_config(args.text_config)
        differ = sorted(k for k, v in wanted.items() if config.text_config.get(k) != v)
        if differ:
            raise InputError(
                f"--resume {resume}: its text encoder differs from --text-config in {differ}"
            )


def new_model(args: argparse.Namespace, max_tokens: int, pretrained: dict[str, Any] | None = None):
    """Build the network for a fresh run (or from ``pretrained``, the --ck_pretrained_refvos
    checkpoint as read)."""
    from ..checkpoint import config_of, load_state_into
    from ..errors import RefVOSError
    from ..modeling import build_from_config, build_model

    if pretrained is not None:
        ckpt = pretrained
        config = config_of(
            ckpt, args.ck_pretrained_refvos, max_tokens=max_tokens, truncation=args.truncation
        )
        if args.model and MODEL_ALIASES.get(args.model, args.model) != config.variant:
            raise RefVOSError(
                f"--model {args.model} but {args.ck_pretrained_refvos} holds a {config.variant}"
            )
        model = build_from_config(config)
        load_state_into(model, ckpt, args.ck_pretrained_refvos)
        return model
    name = MODEL_ALIASES.get(args.model or "refvos_r101", args.model or "refvos_r101")
    weights = None if args.backbone_weights.lower() == "none" else args.backbone_weights
    if name == "refvos_lite" and weights not in (None, "imagenet"):
        raise RefVOSError("--backbone-weights: refvos_lite takes 'imagenet' (shipped) or 'none'")
    text = args.ck_bert or args.text_encoder or DEFAULT_TEXT_ENCODER[name]
    text = None if text.lower() == "none" else text
    try:
        return build_model(
            name,
            backbone_weights=weights,
            text_encoder=text,
            text_config=parse_text_config(args.text_config),
            max_tokens=max_tokens,
            truncation=args.truncation or "standard",
        )
    except RefVOSError as e:
        if text is None or Path(text).is_dir() or "model hub" not in str(e):
            raise
        raise RefVOSError(
            f"{e} With refvos train: --ck_bert DIR, --text-encoder minilm-l6, or "
            "--text-encoder none (random)."
        ) from e


def vocab_file(text_encoder: str | None) -> str | None:
    """A text-encoder directory's own vocab.txt (None: the shipped bert-base-uncased vocabulary)."""
    if text_encoder and (Path(text_encoder) / "vocab.txt").is_file():
        return str(Path(text_encoder) / "vocab.txt")
    return None


def base_side(args: argparse.Namespace) -> int:
    """The training resize side: ``--base-size``, or the original's ``--base_size N`` with its
    meaning, ``int(0.8 * N)`` (its ``train.py``: ``min_size = int(0.8 * base_size)``), else 416."""
    if args.original_base_size is not None:
        return int(0.8 * args.original_base_size)
    return args.base_size or 416


def selection_size(args: argparse.Namespace) -> int:
    """The short side the paper's selection rule validates at: the original's ``--base_size``
    (its evaluation transform resized to it), 520 by default."""
    return args.original_base_size or PAPER_SELECTION_SIZE


def training_config(args: argparse.Namespace, run_dir: Path, rules: dict[str, str] | None = None):
    """The :class:`~refvos.engine.trainer.TrainConfig` of the flags and ``rules`` (precision,
    selection), checked (before any model is built)."""
    from ..engine.trainer import TrainConfig

    rules = rules or {}

    config = TrainConfig(
        output_dir=run_dir,
        epochs=args.epochs,
        schedule="fixed" if args.fixed_lr else args.schedule,
        lr=args.lr,
        lr_factor=args.lr_specific,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        accumulate=args.accumulate,
        workers=args.workers,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        text_encoder_training=args.text_encoder_training,
        precision=rules.get("precision", args.precision or "auto"),
        print_freq=args.print_freq,
        select_metric="mean_iou" if rules.get("selection") == "paper" else "overall_iou",
    )
    config.check()
    return config


def datasets(args: argparse.Namespace, root: Path, opts: dict[str, Any], selection: str = "refvos"):
    """The training set and the model-selection set (or None), each checked to hold samples.
    ``selection`` ``paper``: the selection set always (A2D test, DAVIS val), its images resized to
    :func:`selection_size`, one sentence drawn per target (the original's validation)."""
    from ..data import build_dataset
    from ..engine import distributed as du
    from ..errors import DataFormatError

    train_set = build_dataset(
        args.dataset,
        root,
        "train",
        "train",
        base_size=base_side(args),
        crop_size=args.crop_size,
        **opts,
    )
    split, is_test = SELECTION_SPLIT[args.dataset]
    val_set = None
    if not is_test or args.select_on_test or selection == "paper":
        paper = (
            {"eval_size": selection_size(args), "draw_sentence": True}
            if selection == "paper"
            else {}
        )
        val_set = build_dataset(args.dataset, root, split, "eval", **opts, **paper)
    elif du.is_main_process():
        print(
            f"{args.dataset}: no model selection ({split} is the reported split; "
            "--select-on-test allows it); only last.pth is kept",
            flush=True,
        )
    for name, dataset in (("train", train_set), (split, val_set)):
        if dataset is not None and len(dataset) == 0:
            raise DataFormatError(
                f"{args.dataset} split {name!r} under {root} has no samples; "
                f"training needs {'it' if name == 'train' else 'it for model selection'}"
            )
    return train_set, val_set, split


def input_size_of(val_set, crop_size: int) -> int:
    """The long side, in pixels, of the images the model is evaluated at: the first model-selection
    sample's (evaluation runs at the images' own size), else the training crop."""
    if val_set is None:
        return crop_size
    from ..data.base import ReferringDataset

    if isinstance(val_set, ReferringDataset):  # its own size (--selection paper validates resized)
        return int(max(val_set.load(val_set.targets[0])[0].shape[:2]))
    return int(max(val_set[0]["image"].shape[-2:]))
