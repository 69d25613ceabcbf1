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

from .checks import add_runtime_arguments
from .data_args import (
    MAX_TOKENS,
    add_a2d_query_argument,
    add_data_arguments,
    add_mask_rule_argument,
    add_truncation_argument,
    data_root,
    split_options,
)
from .recipe import (
    add_recipe_argument,
    add_rule_arguments,
    flag,
    recipe_of,
    recorded_rules,
    resolve_rules,
    rules_for,
)
from .train_setup import (
    MODELS,
    base_side,
    check_arguments,
    check_new_run,
    check_resume_matches,
    datasets,
    input_size_of,
    new_model,
    selection_size,
    training_config,
    vocab_file,
)

HELP = "train RefVOS (SGD, RefVOS's learning-rate recipes, exact resume, DDP via torchrun)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..engine.param_groups import TEXT_ENCODER_TRAINING
    from ..engine.schedules import SCHEDULES

    d = p.add_argument_group("data")
    add_data_arguments(d)
    d.add_argument(
        "--base-size",
        dest="base_size",
        type=int,
        default=None,
        help="shorter image side before cropping (default 416)",
    )
    d.add_argument(
        "--base_size",
        dest="original_base_size",
        type=int,
        default=None,
        metavar="N",
        help="the original's flag, with its meaning: training resizes the shorter side to "
        "int(0.8 * N) (its train.py) and --selection paper validates at N (default 520)",
    )
    d.add_argument(
        "--crop-size",
        "--crop_size",
        dest="crop_size",
        type=int,
        default=480,
        help="square training crop (default 480)",
    )
    d.add_argument("-j", "--workers", type=int, default=4, help="DataLoader processes (default 4)")
    add_mask_rule_argument(d)
    add_a2d_query_argument(d)
    add_truncation_argument(d, training=True)
    add_recipe_argument(d, "train")
    add_rule_arguments(d, "train")

    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help="network (default refvos_r101; deeplabv3_resnet101 is the original's name for it)",
    )
    m.add_argument(
        "--backbone-weights",
        default="imagenet",
        help="'imagenet' (default; ResNet-101 downloads torchvision's file), a ResNet-101 "
        ".pth file, or 'none' (random)",
    )
    m.add_argument(
        "--text-encoder",
        help="BERT: hub name, save_pretrained directory, 'minilm-l6' (shipped) "
        "or 'none' (random, shaped by --text-config); default "
        "bert-base-uncased for refvos_r101, minilm-l6 for refvos_lite",
    )
    m.add_argument(
        "--text-config",
        help="BertConfig fields for --text-encoder none: a JSON file or inline "
        'JSON, e.g. \'{"num_hidden_layers": 2, "hidden_size": 64}\'',
    )
    m.add_argument(
        "--ck_bert",
        help="a save_pretrained BERT directory (e.g. from refvos pretrain-bert) as text encoder",
    )
    m.add_argument(
        "--pretrained_refvos",
        action="store_true",
        help="start from the RefVOS checkpoint --ck_pretrained_refvos (weights only)",
    )
    m.add_argument(
        "--ck_pretrained_refvos",
        help="checkpoint for --pretrained_refvos (refvos or released format)",
    )
    m.add_argument(
        "--text-encoder-training",
        choices=TEXT_ENCODER_TRAINING,
        default="original",
        help="original (default): BERT layers 0..L-3 and pooler train, embeddings and the last "
        "two layers frozen; full: all of BERT; frozen: none of it",
    )

    o = p.add_argument_group("optimisation")
    o.add_argument(
        "--schedule",
        choices=sorted(SCHEDULES),
        help="learning-rate schedule (default poly: --lr * (1 - iteration / iterations) ** 0.9, "
        "stepped every iteration as the original); refcoco / davis / a2d: RefVOS's per-epoch "
        "recipes; fixed: the original's --fixed_lr (--lr times --lr_specific); poly-epoch, "
        "constant",
    )
    o.add_argument(
        "--fixed_lr",
        action="store_true",
        help="the original's flag: same as --schedule fixed (rate = --lr * --lr_specific)",
    )
    o.add_argument(
        "--lr_specific",
        type=float,
        help="factor of the fixed schedule, as the original's (default 3e-5: with --lr 0.01 the "
        "rate is 3e-7; --lr 1 --lr_specific 3e-5 gives 3e-5)",
    )
    o.add_argument(
        "--epochs", type=int, help="epochs (default: the recipe's; 30 for poly / constant)"
    )
    o.add_argument(
        "--lr", type=float, help="base learning rate (default 0.01; with a recipe it rescales it)"
    )
    o.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=7,
        help="images per process and step (default 7)",
    )
    o.add_argument(
        "--accumulate", type=int, default=1, help="batches per optimizer step (default 1)"
    )
    o.add_argument(
        "--optimizer",
        choices=("sgd", "adamw"),
        default="sgd",
        help="sgd: the original's (momentum, weight decay); adamw: AdamW, e.g. to train a backbone "
        "from scratch (--backbone-weights none) at --lr 1e-3 (default sgd)",
    )
    o.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum (default 0.9)")
    o.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=1e-6)
    o.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation and data order (default 0)"
    )

    r = p.add_argument_group("run")
    r.add_argument("--output-dir", default="checkpoints", help="default ./checkpoints")
    r.add_argument(
        "--model_id",
        default="model",
        help="run name: the sub-folder of --output-dir (default model)",
    )
    r.add_argument(
        "--resume", help="PATH of a training checkpoint, or 'auto' (last.pth of this run if any)"
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run even where last.pth / best.pth of a previous run exist (replacing them)",
    )
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="also write last.pth every N optimizer steps (default: only each epoch)",
    )
    r.add_argument(
        "--select-on-test",
        action="store_true",
        help="A2D / DAVIS: pick best.pth on the reported split (A2D test, DAVIS val); "
        "implied by --selection paper",
    )
    add_runtime_arguments(
        r,
        None,
        "auto (default; fp32 with --recipe paper): bf16 autocast on CUDA (fp16 + "
        "GradScaler without bf16), on a CPU the faster of fp32 and bf16, measured",
    )
    r.add_argument("--print-freq", type=int, default=10, help="log every N steps (default 10)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoint import check_config, config_of, is_released_format, read_checkpoint
    from ..engine import distributed as du
    from ..engine.resume import check_training_state
    from ..engine.trainer import LAST, Trainer
    from ..errors import InputError
    from ..modeling import build_from_config
    from ..runtime import tf32_mode

    check_arguments(args)
    run_dir = Path(args.output_dir) / args.model_id
    config = training_config(args, run_dir)
    resume = None
    if args.resume == "auto":
        resume = run_dir / LAST if (run_dir / LAST).is_file() else None
    elif args.resume:
        resume = Path(args.resume)
    ckpt = read_checkpoint(resume) if resume is not None else None
    if ckpt is not None and is_released_format(ckpt):
        raise InputError(
            f"--resume {resume} is in the original's released format: refvos train --resume continues a refvos "
            "run; start a new one from it with --pretrained_refvos --ck_pretrained_refvos "
            f"{resume}"
        )
    if ckpt is not None:
        # a released or damaged file, before any data is read (a weights-only one: when resuming)
        check_training_state(ckpt, str(resume), complete=False)
    pretrained = (
        read_checkpoint(args.ck_pretrained_refvos)
        if args.pretrained_refvos and ckpt is None
        else None
    )
    root = data_root(args)

    with du.distributed_mode(args.device) as device:
        if args.original_base_size is not None and du.is_main_process():
            print(
                f"note: --base_size {args.original_base_size} (the original's flag): training resizes the "
                f"shorter side to int(0.8 * {args.original_base_size}) = {base_side(args)}, as the original's "
                "train.py; --base-size N trains at N",
                file=sys.stderr,
                flush=True,
            )
        applicable = rules_for(args.dataset, "train")
        if ckpt is not None:
            old = ckpt.get("args") or {}
            if old.get("dataset") not in (None, args.dataset):
                raise InputError(
                    f"--resume {resume} was trained on {old['dataset']}, not --dataset {args.dataset}"
                )
            config_then = config_of(ckpt, str(resume))
            check_resume_matches(config_then, resume, args)
            # the run's recorded rules (runs from before a rule was recorded: refvos's)
            rules, _ = resolve_rules(
                args,
                applicable,
                recorded_rules(old, config_then.truncation),
                f"--resume {resume}",
                resuming=True,
            )
            max_tokens, vocab = config_then.max_tokens, old.get("vocab_file")
        else:
            check_new_run(run_dir, args)
            max_tokens, vocab = (
                MAX_TOKENS[args.dataset],
                vocab_file(args.ck_bert or args.text_encoder),
            )
            # a run from a RefVOS checkpoint inherits its truncation rule unless told otherwise
            inherited = (
                {"truncation": config_of(pretrained, args.ck_pretrained_refvos).truncation}
                if pretrained is not None
                else None
            )
            rules, _ = resolve_rules(args, applicable, fallback=inherited)
            args.truncation = rules["truncation"]  # what new_model builds the network with
        truncation, query_rule = rules["truncation"], rules.get("a2d_query")
        config = training_config(args, run_dir, rules)
        opts: dict[str, Any] = {
            "max_tokens": max_tokens,
            "vocab_file": vocab,
            "legacy_truncation": truncation == "original",
            **split_options(args),
        }
        if "refcoco_mask" in rules:
            opts["mask_rule"] = rules["refcoco_mask"]
        if args.dataset == "a2d":
            opts.update(query_rule=query_rule, repeated_rows=rules["a2d_repeats"])
        # every split checked before the model is built
        train_set, val_set, split = datasets(args, root, opts, rules["selection"])
        if ckpt is not None:
            model = build_from_config(config_of(ckpt, str(resume)))
        else:
            torch.manual_seed(args.seed)  # the initialisation depends on --seed only
            model = new_model(args, max_tokens, pretrained)
        model.config.input_size = input_size_of(val_set, args.crop_size)
        if (
            ckpt is None
        ):  # whatever trains must load: the loader's own checks, before training starts
            check_config(model.config, f"the new {model.config.variant} network", InputError)

        info = {
            "dataset": args.dataset,
            "data_root": str(root),
            "variant": model.config.variant,
            "model_id": args.model_id,
            "splitBy": args.splitBy,
            "vocab_file": vocab,
            "base_size": base_side(args),
            "original_base_size": args.original_base_size,
            "crop_size": args.crop_size,
            "truncation": model.config.truncation,
            "a2d_query": query_rule,
            "recipe": recipe_of(rules),
            "rules": rules,
            "selection": {
                "rule": rules["selection"],
                "metric": config.select_metric,
                "split": split if val_set is not None else None,
                "size": selection_size(args) if rules["selection"] == "paper" else None,
                "sentences": "one drawn per target" if rules["selection"] == "paper" else "all",
            },
            "selection_split": split if val_set is not None else None,
        }
        trainer = Trainer(model, train_set, config, val_set=val_set, device=device, args=info)
        if du.is_main_process():
            where = f"resuming from {resume}" if resume else "new run"
            print(
                f"training {model.config.variant} on {args.dataset} ({len(train_set)} samples, "
                f"{model.config.truncation} truncation at {model.config.max_tokens} tokens, "
                f"{trainer.steps_per_epoch} steps/epoch, {trainer.epochs} epochs, schedule "
                f"{trainer.schedule.name}, {du.get_world_size()} process(es) on {device}); {where}; "
                f"checkpoints in {run_dir}",
                flush=True,
            )
            print(
                f"rules: {recipe_of(rules)} ("
                + ", ".join(f"{flag(k)} {v}" for k, v in rules.items())
                + ")",
                flush=True,
            )
            logs = f"log: {trainer.events.jsonl_path}"
            if trainer.events.has_tensorboard:
                logs += f"; TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}"
            print(logs, flush=True)
        with tf32_mode(rules["tf32"]):
            result = trainer.fit(resume=resume, checkpoint=ckpt)
        if du.is_main_process():
            last = result.history[-1] if result.history else {}
            print(
                f"done: {result.iteration} steps; last epoch loss {last.get('loss', float('nan')):.4f}; "
                f"{run_dir / LAST}",
                flush=True,
            )
            if result.best:
                print(
                    f"best: {result.best['metric']} {result.best['value']:.4f} at epoch "
                    f"{result.best['epoch']}; {run_dir / 'best.pth'} (weights only)",
                    flush=True,
                )
    return 0
