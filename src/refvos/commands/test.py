"""``refvos test``: evaluate a checkpoint on RefCOCO / RefCOCO+ / RefCOCOg, A2D-Sentences or DAVIS-2017.

The original's command line works as typed: ``test.py --dataset refcoco --resume CKPT --split val
--display`` -> ``refvos test --dataset refcoco --resume CKPT --split val --display``
(``--checkpoint`` is the name the other commands use; ``--results_folder``, ``--submission_path``,
``-b``, ``-j`` are the original's names of ``--output-dir``, ``--submission``, ``--batch-size``,
``--workers``).

Outputs (rank 0 under torchrun; all written atomically) in ``--output-dir`` (default
``./output/test``):

- ``metrics.json`` (or ``--metrics-json FILE``): every metric as a fraction in 0..1 (see
  :func:`refvos.engine.evaluator.evaluate`) and under ``run`` what was evaluated: data set,
  split, checkpoint, precision, device, the output files and folders, and for A2D the query rule
  (``a2d_query``) with the number of queries it cut (``a2d_queries_cut``);
- ``samples.jsonl``: one line per (image or frame, expression): identifiers, sentence,
  intersection, union, IoU, predicted / ground-truth area, score (and J, F for DAVIS);
- ``--display``: ``display/<index:06d>_<sample>.png`` overlays (prediction red, ground-truth
  outline green, expression below) of the first ``--display-limit`` samples;
- ``--categories CSV``: ``categories.json`` and ``categories.png`` (per difficulty and category);
- ``--submission DIR`` (DAVIS): ``DIR/annotator<a>_<kind>/<video>/<frame>.png`` palette PNGs,
  each a results folder for davis2017-evaluation.

The rules the run uses (truncation, RefCOCO mask, A2D query and repeated rows, DAVIS overlap,
TF32; :mod:`.recipe`) are the checkpoint's recorded ones unless a flag or ``--recipe`` says
otherwise; such a difference is named in one note on stderr, and ``metrics.json`` records the
rules under ``run.rules``.

The metrics are also printed as a table, as fractions like ``metrics.json`` (the paper's tables
are x100).
"""

from __future__ import annotations

import argparse
import sys

from .checks import add_backend_argument, add_compile_argument, add_runtime_arguments
from .data_args import (
    a2d_query_options,
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
    add_recipe_argument,
    add_rule_arguments,
    recipe_of,
    recorded_rules,
    resolve_rules,
    rules_for,
)

HELP = "evaluate a checkpoint: IoU / precision@K, A2D mAP, DAVIS J&F, overlays, DAVIS submission"

PROTOCOLS = ("all", "refvos")
# --protocol refvos on DAVIS: the paper's setting (the original test.py: DAVIS17(annotator=1,
# emb_type='first_mask'), scored with its IoU protocol; emb_type='full_video' = --expressions full_video)
REFVOS_DAVIS = {"annotator": "1", "expressions": "first_frame"}
DEFAULT_SPLIT = {
    "refcoco": "val",
    "refcoco+": "val",
    "refcocog": "val",
    "a2d": "test",
    "davis": "val",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument(
        "--checkpoint",
        "--resume",
        dest="checkpoint",
        required=True,
        metavar="CKPT",
        help="checkpoint to evaluate (refvos format or the authors' release, a save_pretrained "
        "folder, or a released model's name: refvos download --list); "
        "--resume is the original's name",
    )
    parser.add_argument(
        "--split", default=None, help="split (default: val for RefCOCO* and DAVIS, test for A2D)"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="all",
        help="refvos: the paper's setting in one flag (DAVIS: annotator 1's first-frame "
        "expressions, scored with the IoU protocol; --expressions full_video for the "
        "paper's full-video column; A2D: queries read as the authors' code reads them, "
        "--a2d-query original; RefCOCO: masks by the authors' rule, --refcoco-mask "
        "original); all (default): every annotator and expression kind the other flags "
        "allow",
    )
    parser.add_argument(
        "--annotator",
        choices=("1", "2", "both"),
        default=None,
        help="DAVIS: whose expressions (default both: per annotator and averaged; 1 with "
        "--protocol refvos)",
    )
    parser.add_argument(
        "--expressions",
        choices=("first_frame", "full_video", "both"),
        default=None,
        help="DAVIS: expression kind, reported apart (default both; first_frame with "
        "--protocol refvos)",
    )
    parser.add_argument(
        "--davis-frames",
        choices=("inner", "all"),
        default="inner",
        help="DAVIS J/F frames: inner leaves out each video's first and last frame "
        "as davis2017-evaluation's semi-supervised task (default), all keeps "
        "them",
    )
    parser.add_argument(
        "--display", action="store_true", help="write overlays to <output-dir>/display/"
    )
    parser.add_argument(
        "--display-limit",
        type=int,
        default=50,
        help="overlays for the first N samples (default 50)",
    )
    parser.add_argument(
        "--submission",
        "--submission_path",
        metavar="DIR",
        help="DAVIS: write palette PNGs for davis2017-evaluation into DIR",
    )
    parser.add_argument(
        "--metrics-json",
        metavar="FILE",
        help="also write the metrics JSON here (default <output-dir>/metrics.json)",
    )
    parser.add_argument(
        "--categories",
        metavar="CSV",
        help="RefVOS categorisation CSV (A2D / DAVIS): per-difficulty and "
        "per-category metrics as JSON and a bar chart",
    )
    parser.add_argument(
        "--output-dir",
        "--results_folder",
        default="./output/test",
        help="folder for metrics.json, samples.jsonl, display/, categories.* "
        "(default ./output/test)",
    )
    add_mask_rule_argument(parser)
    add_a2d_query_argument(parser, protocol=True)
    add_truncation_argument(parser)
    add_recipe_argument(parser, "test")
    add_rule_arguments(parser, "test")
    add_runtime_arguments(
        parser,
        None,
        "numeric precision (default fp32: faithful to the original; auto: the faster of "
        "fp32 and bf16 on this CPU, measured and cached)",
    )
    add_compile_argument(
        parser, "per image size, sizes with enough samples to pay back the compile time"
    )
    add_backend_argument(parser, int8=False)
    parser.add_argument(
        "-b",
        "--batch-size",
        type=int,
        default=1,
        help="samples per forward pass, same-size images only (default 1, as the original)",
    )
    parser.add_argument(
        "-j", "--workers", type=int, default=0, help="data-loading worker processes (default 0)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a progress bar on stderr (default on; --no-progress turns it off)",
    )


def davis_selection(args: argparse.Namespace) -> tuple[str, str]:
    """DAVIS ``(annotator, expressions)`` from ``--protocol``, ``--annotator``, ``--expressions``."""
    from ..errors import InputError

    annotator, expressions = args.annotator, args.expressions
    if getattr(args, "protocol", "all") == "refvos":
        if annotator not in (None, REFVOS_DAVIS["annotator"]):
            raise InputError(
                f"--protocol refvos evaluates --annotator {REFVOS_DAVIS['annotator']}; drop "
                f"--annotator {annotator} or use --protocol all"
            )
        if expressions == "both":
            raise InputError(
                "--protocol refvos evaluates one expression kind: --expressions first_frame "
                "(default) or full_video"
            )
        annotator, expressions = (
            REFVOS_DAVIS["annotator"],
            expressions or REFVOS_DAVIS["expressions"],
        )
    return annotator or "both", expressions or "both"


def a2d_query(args: argparse.Namespace) -> str | None:
    """The A2D query rule: ``--a2d-query``, else ``original`` under ``--protocol refvos`` (the
    paper's A2D numbers were computed on queries cut at their first comma) and ``full`` otherwise;
    None for other data sets."""
    return a2d_query_rule(
        args, "original" if getattr(args, "protocol", "all") == "refvos" else "full"
    )


def cut_queries(dataset) -> int:
    """How many distinct A2D queries the query rule cut (their samples carry ``full_query``)."""
    parts = getattr(dataset, "datasets", [dataset])
    return len(
        {
            s.meta["full_query"]
            for part in parts
            for t in part.targets
            for s in t.sentences
            if "full_query" in s.meta
        }
    )


def build_test_dataset(args: argparse.Namespace, legacy_truncation: bool = False):
    """The evaluation Dataset the flags ask for (DAVIS kinds concatenated); expressions are cut
    with the original's rule when ``legacy_truncation``."""

    import torch

    from ..data import build_dataset

    split = args.split or DEFAULT_SPLIT[args.dataset]
    root = data_root(args)
    if args.dataset == "davis":
        annotator, expressions = davis_selection(args)
        annotator = "both" if annotator == "both" else int(annotator)
        kinds = ("first_frame", "full_video") if expressions == "both" else (expressions,)
        parts = [
            build_dataset(
                "davis",
                root,
                split,
                mode="eval",
                annotator=annotator,
                kind=k,
                legacy_truncation=legacy_truncation,
            )
            for k in kinds
        ]
        return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
    repeats = (
        {"repeated_rows": args.a2d_repeats} if args.dataset == "a2d" and args.a2d_repeats else {}
    )
    return build_dataset(
        args.dataset,
        root,
        split,
        mode="eval",
        legacy_truncation=legacy_truncation,
        **split_options(args),
        **mask_rule_options(args),
        **a2d_query_options(a2d_query(args)),
        **repeats,
    )


def rules_of_test(
    args: argparse.Namespace, ckpt: dict, source: str
) -> tuple[dict[str, str], str | None]:
    """The rules this test runs under (:mod:`.recipe`): each flag, else ``--recipe``, else what
    the checkpoint ``ckpt`` records, else refvos's; and the one-line note naming the values that
    differ from the recorded ones. ``--protocol refvos`` counts as ``--a2d-query original`` and
    ``--refcoco-mask original``. The
    values are written back into ``args`` (what :func:`build_test_dataset` reads)."""
    from ..checkpoint import config_of, is_released_format

    recorded = recorded_rules(
        None if is_released_format(ckpt) else ckpt.get("args"), config_of(ckpt, source).truncation
    )
    implied = {}
    if getattr(args, "protocol", "all") == "refvos":  # the data the paper's numbers were scored on
        if args.dataset == "a2d" and args.a2d_query is None:
            implied["a2d_query"] = ("original", "--protocol refvos")
        if args.dataset.startswith("refcoco") and args.refcoco_mask is None:
            implied["refcoco_mask"] = ("original", "--protocol refvos")
    rules, note = resolve_rules(
        args, rules_for(args.dataset, "test"), recorded, source, implied=implied
    )
    for rule, value in rules.items():
        setattr(args, rule, value)
    return rules, note


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..checkpoint import check_checkpoint_file, model_from_checkpoint, read_checkpoint
    from ..data.base import dataset_truncation
    from ..engine import distributed as du
    from ..engine.evaluator import evaluate
    from ..engine.tables import print_table
    from ..errors import DataFormatError, InputError
    from ..io import atomic_write_json
    from ..runtime import tf32_mode
    from ..tokenization import truncation_note

    check_checkpoint_file(args.checkpoint, "--checkpoint")
    if args.display_limit < 0:
        raise InputError("--display-limit must be at least 0")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.workers < 0:
        raise InputError("--workers must be at least 0")
    if args.dataset != "davis" and args.submission:
        raise InputError("--submission writes DAVIS-format results; use it with --dataset davis")
    if args.categories and not Path(args.categories).is_file():
        raise InputError(f"--categories {args.categories}: file not found")
    if args.categories and args.dataset not in ("a2d", "davis"):
        raise InputError("--categories: RefVOS's categorisation files cover A2D and DAVIS only")

    a2d_query(args)  # --a2d-query with another data set: refused before the model is loaded
    mask_rule_options(args)  # --refcoco-mask likewise
    for flag, value, dataset in (
        ("--a2d-repeats", args.a2d_repeats, "a2d"),
        ("--davis-overlap", args.davis_overlap, "davis"),
    ):
        if value and args.dataset != dataset:
            raise InputError(f"{flag} applies to --dataset {dataset}, not {args.dataset}")
    if args.dataset != "davis" and (args.annotator or args.expressions):
        raise InputError(
            "--annotator and --expressions choose DAVIS expressions; use them with --dataset davis"
        )
    from ..io import check_output_folder, check_writable

    check_output_folder(args.output_dir, "--output-dir")
    if args.metrics_json:  # checked before the (long) evaluation, not after it
        check_writable([Path(args.metrics_json)], [Path(args.checkpoint)])
    ckpt = read_checkpoint(args.checkpoint)
    rules, note = rules_of_test(args, ckpt, f"--checkpoint {args.checkpoint}")
    if note is not None:
        print(note, file=sys.stderr)
    model = model_from_checkpoint(ckpt, str(args.checkpoint), truncation=rules["truncation"])
    del ckpt
    precision = args.precision or "fp32"
    dataset = build_test_dataset(args, legacy_truncation=model.config.legacy_truncation)
    split = args.split or DEFAULT_SPLIT[args.dataset]
    if len(dataset) == 0:
        raise DataFormatError(
            f"--split {split}: {args.dataset} has no samples in it under {data_root(args)}"
        )
    truncation = dataset_truncation(dataset)
    out = Path(args.output_dir)
    run_info = {
        "dataset": args.dataset,
        "split": split,
        "checkpoint": str(args.checkpoint),
        "precision": precision,
        "backend": args.backend,
        "device": str(args.device or "auto"),
        "num_samples": len(dataset),
        "output_dir": str(out),
        "samples": str(out / "samples.jsonl"),
        "display_dir": str(out / "display") if args.display else None,
        "submission_dir": str(args.submission) if args.submission else None,
        "truncation": truncation,
        "recipe": recipe_of(rules),
        "rules": rules,
    }
    if args.dataset == "a2d":
        run_info["a2d_query"], run_info["a2d_queries_cut"] = a2d_query(args), cut_queries(dataset)
        if run_info["a2d_queries_cut"]:
            print(
                f"note: {run_info['a2d_queries_cut']} A2D queries are cut at their first comma "
                f"(--a2d-query {run_info['a2d_query']}, as the authors' code reads a2d_annotation.txt)",
                file=sys.stderr,
            )
    if (note := truncation_note(truncation)) is not None:
        print(note, file=sys.stderr)
    with du.distributed_mode(args.device) as device, tf32_mode(rules["tf32"]):
        rank = du.get_rank()
        result = evaluate(
            model,
            dataset,
            device=device,
            precision=precision,
            davis_overlap=rules.get("davis_overlap", "confident"),
            batch_size=args.batch_size,
            workers=args.workers,
            display_dir=out / "display" if args.display else None,
            display_limit=args.display_limit,
            submission_dir=args.submission,
            categories=args.categories,
            output_dir=out,
            davis_frames=args.davis_frames,
            progress=args.progress,
            run_info=run_info,
            compile=args.compile,
            backend=args.backend,
        )
    if rank == 0:
        if args.metrics_json:
            atomic_write_json(args.metrics_json, result["metrics"])
        print_table(result["metrics"])
        print(
            f"metrics: {Path(args.metrics_json or out / 'metrics.json')}; per-sample results: "
            f"{out / 'samples.jsonl'}"
        )
    return 0
