"""``refvos train``: train RefVOS on RefCOCO / RefCOCO+ / RefCOCOg / A2D-Sentences / DAVIS-2017.

The seed's command lines work as typed, e.g. ``refvos train --dataset refcoco --model_id model``,
``--ck_bert DIR``, ``--pretrained_refvos --ck_pretrained_refvos CKPT``. Several GPUs or nodes:
``torchrun --nproc_per_node N -m refvos train ...`` (``--batch-size`` is per process).

Checkpoints go to ``<--output-dir>/<--model_id>/``: ``last.pth`` (every epoch, and every
``--checkpoint-every`` steps), ``best.pth`` (best validation overall IoU; mean IoU with
``--selection paper``), ``log.jsonl`` and ``tensorboard/``. ``--resume auto`` continues from
``last.pth`` there if it exists.

``--recipe paper`` sets every rule of the authors' code at once (:mod:`.recipe`); the rules are
recorded in the checkpoint's ``args["rules"]``. ``--base_size N`` (the original's spelling) has
the original's meaning: training resizes to ``int(0.8 * N)``; ``--base-size N`` resizes to N.

Data roots (the original's names where it had them): ``--refer_data_root`` (RefCOCO family, the
REFER ``data`` folder; default ``./refer/data``), ``--a2d_root`` (the ``Release`` folder; default
``./a2d/Release``), ``--davis_root`` (the ``davis2017`` folder; default ``./davis2017``), or
``--data-root`` for whichever data set is chosen.

Model selection uses RefCOCO's ``val`` split. A2D-Sentences has only train / test, and RefVOS
reports DAVIS-2017 on ``val``; for these two the reported split is never used to pick a model
unless ``--select-on-test`` or ``--selection paper`` is given (otherwise no ``best.pth`` is
written); the authors' code selected on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .checks import add_runtime_arguments, parse_text_config
from .data_args import (
    MAX_TOKENS,
    a2d_query_rule,
    add_a2d_query_argument,
    add_data_arguments,
    add_mask_rule_argument,
    add_truncation_argument,
    data_root,
    mask_rule_options,
    split_options,
)
from .recipe import (
    PAPER_SELECTION_SIZE,
    add_recipe_argument,
    add_rule_arguments,
    flag,
    recipe_of,
    recorded_rules,
    resolve_rules,
    rules_for,
)

HELP = "train RefVOS (SGD, RefVOS's learning-rate recipes, exact resume, DDP via torchrun)"

MODELS = ("refvos_r101", "refvos_lite", "deeplabv3_resnet101")  # the last: the original's name
MODEL_ALIASES = {"deeplabv3_resnet101": "refvos_r101"}
# data set -> (split used for model selection, whether that split is the one results are reported on)
SELECTION_SPLIT = {"refcoco": ("val", False), "refcoco+": ("val", False), "refcocog": ("val", False),
                   "a2d": ("test", True), "davis": ("val", True)}
DEFAULT_TEXT_ENCODER = {"refvos_r101": "bert-base-uncased", "refvos_lite": "minilm-l6"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..engine.param_groups import TEXT_ENCODER_TRAINING
    from ..engine.schedules import SCHEDULES

    d = p.add_argument_group("data")
    add_data_arguments(d)
    d.add_argument("--base-size", dest="base_size", type=int, default=None,
                   help="shorter image side before cropping (default 416)")
    d.add_argument("--base_size", dest="original_base_size", type=int, default=None, metavar="N",
                   help="the original's flag, with its meaning: training resizes the shorter side to "
                        "int(0.8 * N) (its train.py) and --selection paper validates at N (default 520)")
    d.add_argument("--crop-size", "--crop_size", dest="crop_size", type=int, default=480,
                   help="square training crop (default 480)")
    d.add_argument("-j", "--workers", type=int, default=4, help="DataLoader processes (default 4)")
    add_mask_rule_argument(d)
    add_a2d_query_argument(d)
    add_truncation_argument(d, training=True)
    add_recipe_argument(d, "train")
    add_rule_arguments(d, "train")

    m = p.add_argument_group("model")
    m.add_argument("--model", choices=MODELS, default=None,
                   help="network (default refvos_r101; deeplabv3_resnet101 is the original's name for it)")
    m.add_argument("--backbone-weights", default="imagenet",
                   help="'imagenet' (default; ResNet-101 downloads torchvision's file), a ResNet-101 "
                        ".pth file, or 'none' (random)")
    m.add_argument("--text-encoder", help="BERT: hub name, save_pretrained directory, 'minilm-l6' (shipped) "
                                          "or 'none' (random, shaped by --text-config); default "
                                          "bert-base-uncased for refvos_r101, minilm-l6 for refvos_lite")
    m.add_argument("--text-config", help="BertConfig fields for --text-encoder none: a JSON file or inline "
                                         "JSON, e.g. '{\"num_hidden_layers\": 2, \"hidden_size\": 64}'")
    m.add_argument("--ck_bert", help="a save_pretrained BERT directory (e.g. from refvos pretrain-bert) "
                                     "as text encoder")
    m.add_argument("--pretrained_refvos", action="store_true",
                   help="start from the RefVOS checkpoint --ck_pretrained_refvos (weights only)")
    m.add_argument("--ck_pretrained_refvos", help="checkpoint for --pretrained_refvos (refvos or released format)")
    m.add_argument("--text-encoder-training", choices=TEXT_ENCODER_TRAINING, default="original",
                   help="original (default): BERT layers 0..L-3 and pooler train, embeddings and the last "
                        "two layers frozen; full: all of BERT; frozen: none of it")

    o = p.add_argument_group("optimisation")
    o.add_argument("--schedule", choices=sorted(SCHEDULES),
                   help="learning-rate schedule (default poly: --lr * (1 - iteration / iterations) ** 0.9, "
                        "stepped every iteration as the original); refcoco / davis / a2d: RefVOS's per-epoch "
                        "recipes; fixed: the original's --fixed_lr (--lr times --lr_specific); poly-epoch, "
                        "constant")
    o.add_argument("--fixed_lr", action="store_true",
                   help="the original's flag: same as --schedule fixed (rate = --lr * --lr_specific)")
    o.add_argument("--lr_specific", type=float,
                   help="factor of the fixed schedule, as the original's (default 3e-5: with --lr 0.01 the "
                        "rate is 3e-7; --lr 1 --lr_specific 3e-5 gives 3e-5)")
    o.add_argument("--epochs", type=int, help="epochs (default: the recipe's; 30 for poly / constant)")
    o.add_argument("--lr", type=float, help="base learning rate (default 0.01; with a recipe it rescales it)")
    o.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=7,
                   help="images per process and step (default 7)")
    o.add_argument("--accumulate", type=int, default=1, help="batches per optimizer step (default 1)")
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=1e-6)
    o.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order (default 0)")

    r = p.add_argument_group("run")
    r.add_argument("--output-dir", default="checkpoints", help="default ./checkpoints")
    r.add_argument("--model_id", default="model", help="run name: the sub-folder of --output-dir (default model)")
    r.add_argument("--resume", help="PATH of a training checkpoint, or 'auto' (last.pth of this run if any)")
    r.add_argument("--overwrite", action="store_true",
                   help="start a new run even where last.pth / best.pth of a previous run exist (replacing them)")
    r.add_argument("--checkpoint-every", type=int, default=0,
                   help="also write last.pth every N optimizer steps (default: only each epoch)")
    r.add_argument("--select-on-test", action="store_true",
                   help="A2D / DAVIS: pick best.pth on the reported split (A2D test, DAVIS val); "
                        "implied by --selection paper")
    add_runtime_arguments(r, None, "auto (default; fp32 with --recipe paper): bf16 autocast on CUDA (fp16 + "
                                   "GradScaler without bf16), on a CPU the faster of fp32 and bf16, measured")
    r.add_argument("--print-freq", type=int, default=10, help="log every N steps (default 10)")


def _check_arguments(args: argparse.Namespace) -> None:
    from ..errors import InputError
    from ..io import check_output_folder

    if args.ck_pretrained_refvos and not args.pretrained_refvos:
        raise InputError("--ck_pretrained_refvos is only read with --pretrained_refvos")
    if args.pretrained_refvos and not args.ck_pretrained_refvos:
        raise InputError("--pretrained_refvos needs --ck_pretrained_refvos CKPT")
    if args.pretrained_refvos and args.resume:
        raise InputError("--resume continues a run; --pretrained_refvos starts a new one: pass one of them")
    if args.ck_bert and args.text_encoder:
        raise InputError("--ck_bert and --text-encoder both name the text encoder: pass one")
    if args.ck_bert and not Path(args.ck_bert).is_dir():
        raise InputError(f"--ck_bert {args.ck_bert}: not a directory (expected a save_pretrained BERT folder; "
                         "a model hub name is --text-encoder NAME)")
    if args.pretrained_refvos and (args.ck_bert or args.text_encoder):
        raise InputError("--pretrained_refvos loads the text encoder from its checkpoint; "
                         "drop --ck_bert / --text-encoder")
    if args.text_config and (args.text_encoder or "").lower() != "none":
        raise InputError("--text-config shapes a random text encoder: use it with --text-encoder none")
    if args.fixed_lr and args.schedule not in (None, "fixed"):
        raise InputError(f"--fixed_lr is --schedule fixed; it cannot be combined with --schedule {args.schedule}")
    if args.base_size is not None and args.original_base_size is not None:
        raise InputError("--base-size N trains at N, --base_size N (the original's flag) at int(0.8 * N): "
                         "pass one of them")
    if args.original_base_size is not None and args.original_base_size < 10:
        raise InputError("--base_size (the original's flag; training at int(0.8 * N)) must be at least 10")
    if (args.base_size or 8) < 8 or args.crop_size < 8:
        raise InputError("--base-size and --crop-size must be at least 8 pixels")
    _check_text_config(args)  # a JSON or BertConfig mistake: refused before anything is built
    a2d_query_rule(args)  # --a2d-query with another data set
    mask_rule_options(args)  # --refcoco-mask with another data set
    if args.a2d_repeats and args.dataset != "a2d":
        raise InputError(f"--a2d-repeats applies to A2D-Sentences (--dataset a2d), not {args.dataset}")
    if not 0 <= args.seed < 2**32:
        raise InputError(f"--seed must be in 0..{2**32 - 1}, got {args.seed}")
    if args.resume and args.overwrite:
        raise InputError("--overwrite starts a new run; --resume continues one: pass one of them")
    check_output_folder(args.output_dir, "--output-dir")
    run_dir = (Path(args.output_dir) / args.model_id).resolve()
    if Path(args.model_id).is_absolute() or not run_dir.is_relative_to(Path(args.output_dir).resolve()) \
            or run_dir == Path(args.output_dir).resolve():
        raise InputError(f"--model_id {args.model_id!r} must name a sub-folder of --output-dir {args.output_dir}")


def _check_text_config(args: argparse.Namespace) -> None:
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
        RefVOSConfig(variant=name, backbone=VARIANT_BACKBONES[name], backbone_channels=1, text_config=text,
                     max_tokens=MAX_TOKENS[args.dataset]).validate()
    except ValueError as e:
        raise InputError(f"--text-config: {e}; a checkpoint of that network could not be loaded") from e


def _check_new_run(run_dir: Path, args: argparse.Namespace) -> None:
    """A new run must not silently replace a previous run's checkpoints."""
    from ..engine.trainer import BEST, LAST
    from ..errors import InputError

    existing = [name for name in (LAST, BEST) if (run_dir / name).exists()]
    if existing and not args.overwrite:
        raise InputError(f"{run_dir} already holds a run ({', '.join(existing)}); pass --resume auto to continue "
                         "it, --overwrite to replace it, or another --model_id")


def _check_resume_matches(config, resume: Path, args: argparse.Namespace) -> None:
    """--model / --text-config given with --resume must describe the checkpoint's network."""
    from ..errors import InputError

    if args.model and MODEL_ALIASES.get(args.model, args.model) != config.variant:
        raise InputError(f"--resume {resume} holds a {config.variant}, not --model {args.model}")
    if args.text_config:
        wanted = parse_text_config(args.text_config)
        differ = sorted(k for k, v in wanted.items() if config.text_config.get(k) != v)
        if differ:
            raise InputError(f"--resume {resume}: its text encoder differs from --text-config in {differ}")


def _new_model(args: argparse.Namespace, max_tokens: int, pretrained: dict[str, Any] | None = None):
    """Build the network for a fresh run (or from ``pretrained``, the --ck_pretrained_refvos
    checkpoint as read)."""
    from ..checkpoint import config_of, load_state_into
    from ..errors import RefVOSError
    from ..modeling import build_from_config, build_model

    if pretrained is not None:
        ckpt = pretrained
        config = config_of(ckpt, args.ck_pretrained_refvos, max_tokens=max_tokens, truncation=args.truncation)
        if args.model and MODEL_ALIASES.get(args.model, args.model) != config.variant:
            raise RefVOSError(f"--model {args.model} but {args.ck_pretrained_refvos} holds a {config.variant}")
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
        return build_model(name, backbone_weights=weights, text_encoder=text,
                           text_config=parse_text_config(args.text_config), max_tokens=max_tokens,
                           truncation=args.truncation or "standard")
    except RefVOSError as e:
        if text is None or Path(text).is_dir() or "model hub" not in str(e):
            raise
        raise RefVOSError(f"{e} With refvos train: --ck_bert DIR, --text-encoder minilm-l6, or "
                          "--text-encoder none (random).") from e


def _vocab_file(text_encoder: str | None) -> str | None:
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


def _training_config(args: argparse.Namespace, run_dir: Path, rules: dict[str, str] | None = None):
    """The :class:`~refvos.engine.trainer.TrainConfig` of the flags and ``rules`` (precision,
    selection), checked (before any model is built)."""
    from ..engine.trainer import TrainConfig

    rules = rules or {}

    config = TrainConfig(
        output_dir=run_dir, epochs=args.epochs, schedule="fixed" if args.fixed_lr else args.schedule,
        lr=args.lr, lr_factor=args.lr_specific,
        batch_size=args.batch_size, momentum=args.momentum, weight_decay=args.weight_decay,
        accumulate=args.accumulate, workers=args.workers, seed=args.seed,
        checkpoint_every=args.checkpoint_every, text_encoder_training=args.text_encoder_training,
        precision=rules.get("precision", args.precision or "auto"), print_freq=args.print_freq,
        select_metric="mean_iou" if rules.get("selection") == "paper" else "overall_iou",
    )
    config.check()
    return config


def _datasets(args: argparse.Namespace, root: Path, opts: dict[str, Any], selection: str = "refvos"):
    """The training set and the model-selection set (or None), each checked to hold samples.
    ``selection`` ``paper``: the selection set always (A2D test, DAVIS val), its images resized to
    :func:`selection_size`, one sentence drawn per target (the original's validation)."""
    from ..data import build_dataset
    from ..engine import distributed as du
    from ..errors import DataFormatError

    train_set = build_dataset(args.dataset, root, "train", "train", base_size=base_side(args),
                              crop_size=args.crop_size, **opts)
    split, is_test = SELECTION_SPLIT[args.dataset]
    val_set = None
    if not is_test or args.select_on_test or selection == "paper":
        paper = {"eval_size": selection_size(args), "draw_sentence": True} if selection == "paper" else {}
        val_set = build_dataset(args.dataset, root, split, "eval", **opts, **paper)
    elif du.is_main_process():
        print(f"{args.dataset}: no model selection ({split} is the reported split; "
              "--select-on-test allows it); only last.pth is kept", flush=True)
    for name, dataset in (("train", train_set), (split, val_set)):
        if dataset is not None and len(dataset) == 0:
            raise DataFormatError(f"{args.dataset} split {name!r} under {root} has no samples; "
                                  f"training needs {'it' if name == 'train' else 'it for model selection'}")
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


def run(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoint import check_config, config_of, is_released_format, read_checkpoint
    from ..engine import distributed as du
    from ..engine.resume import check_training_state
    from ..engine.trainer import LAST, Trainer
    from ..errors import InputError
    from ..modeling import build_from_config
    from ..runtime import tf32_mode

    _check_arguments(args)
    run_dir = Path(args.output_dir) / args.model_id
    config = _training_config(args, run_dir)
    resume = None
    if args.resume == "auto":
        resume = run_dir / LAST if (run_dir / LAST).is_file() else None
    elif args.resume:
        resume = Path(args.resume)
    ckpt = read_checkpoint(resume) if resume is not None else None
    if ckpt is not None and is_released_format(ckpt):
        raise InputError(f"--resume {resume} is in the original's released format: refvos train --resume continues a refvos "
                         "run; start a new one from it with --pretrained_refvos --ck_pretrained_refvos "
                         f"{resume}")
    if ckpt is not None:
        # a released or damaged file, before any data is read (a weights-only one: when resuming)
        check_training_state(ckpt, str(resume), complete=False)
    pretrained = read_checkpoint(args.ck_pretrained_refvos) if args.pretrained_refvos and ckpt is None else None
    root = data_root(args)

    with du.distributed_mode(args.device) as device:
        if args.original_base_size is not None and du.is_main_process():
            print(f"note: --base_size {args.original_base_size} (the original's flag): training resizes the "
                  f"shorter side to int(0.8 * {args.original_base_size}) = {base_side(args)}, as the original's "
                  "train.py; --base-size N trains at N", file=sys.stderr, flush=True)
        applicable = rules_for(args.dataset, "train")
        if ckpt is not None:
            old = ckpt.get("args") or {}
            if old.get("dataset") not in (None, args.dataset):
                raise InputError(f"--resume {resume} was trained on {old['dataset']}, not --dataset {args.dataset}")
            config_then = config_of(ckpt, str(resume))
            _check_resume_matches(config_then, resume, args)
            # the run's recorded rules (runs from before a rule was recorded: refvos's)
            rules, _ = resolve_rules(args, applicable, recorded_rules(old, config_then.truncation),
                                     f"--resume {resume}", resuming=True)
            max_tokens, vocab = config_then.max_tokens, old.get("vocab_file")
        else:
            _check_new_run(run_dir, args)
            max_tokens, vocab = MAX_TOKENS[args.dataset], _vocab_file(args.ck_bert or args.text_encoder)
            # a run from a RefVOS checkpoint inherits its truncation rule unless told otherwise
            inherited = ({"truncation": config_of(pretrained, args.ck_pretrained_refvos).truncation}
                         if pretrained is not None else None)
            rules, _ = resolve_rules(args, applicable, fallback=inherited)
            args.truncation = rules["truncation"]  # what _new_model builds the network with
        truncation, query_rule = rules["truncation"], rules.get("a2d_query")
        config = _training_config(args, run_dir, rules)
        opts: dict[str, Any] = {"max_tokens": max_tokens, "vocab_file": vocab,
                                "legacy_truncation": truncation == "original", **split_options(args)}
        if "refcoco_mask" in rules:
            opts["mask_rule"] = rules["refcoco_mask"]
        if args.dataset == "a2d":
            opts.update(query_rule=query_rule, repeated_rows=rules["a2d_repeats"])
        # every split checked before the model is built
        train_set, val_set, split = _datasets(args, root, opts, rules["selection"])
        if ckpt is not None:
            model = build_from_config(config_of(ckpt, str(resume)))
        else:
            torch.manual_seed(args.seed)  # the initialisation depends on --seed only
            model = _new_model(args, max_tokens, pretrained)
        model.config.input_size = input_size_of(val_set, args.crop_size)
        if ckpt is None:  # whatever trains must load: the loader's own checks, before training starts
            check_config(model.config, f"the new {model.config.variant} network", InputError)

        info = {"dataset": args.dataset, "data_root": str(root), "variant": model.config.variant,
                "model_id": args.model_id, "splitBy": args.splitBy, "vocab_file": vocab,
                "base_size": base_side(args), "original_base_size": args.original_base_size,
                "crop_size": args.crop_size, "truncation": model.config.truncation,
                "a2d_query": query_rule, "recipe": recipe_of(rules), "rules": rules,
                "selection": {"rule": rules["selection"], "metric": config.select_metric,
                              "split": split if val_set is not None else None,
                              "size": selection_size(args) if rules["selection"] == "paper" else None,
                              "sentences": "one drawn per target" if rules["selection"] == "paper" else "all"},
                "selection_split": split if val_set is not None else None}
        trainer = Trainer(model, train_set, config, val_set=val_set, device=device, args=info)
        if du.is_main_process():
            where = f"resuming from {resume}" if resume else "new run"
            print(f"training {model.config.variant} on {args.dataset} ({len(train_set)} samples, "
                  f"{model.config.truncation} truncation at {model.config.max_tokens} tokens, "
                  f"{trainer.steps_per_epoch} steps/epoch, {trainer.epochs} epochs, schedule "
                  f"{trainer.schedule.name}, {du.get_world_size()} process(es) on {device}); {where}; "
                  f"checkpoints in {run_dir}", flush=True)
            print(f"rules: {recipe_of(rules)} (" + ", ".join(f"{flag(k)} {v}" for k, v in rules.items()) + ")",
                  flush=True)
            logs = f"log: {trainer.events.jsonl_path}"
            if trainer.events.has_tensorboard:
                logs += f"; TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}"
            print(logs, flush=True)
        with tf32_mode(rules["tf32"]):
            result = trainer.fit(resume=resume, checkpoint=ckpt)
        if du.is_main_process():
            last = result.history[-1] if result.history else {}
            print(f"done: {result.iteration} steps; last epoch loss {last.get('loss', float('nan')):.4f}; "
                  f"{run_dir / LAST}", flush=True)
            if result.best:
                print(f"best: {result.best['metric']} {result.best['value']:.4f} at epoch "
                      f"{result.best['epoch']}; {run_dir / 'best.pth'} (weights only)", flush=True)
    return 0
