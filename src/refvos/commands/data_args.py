"""The data-set flags shared by ``refvos train``, ``refvos test`` and ``refvos pretrain-bert``,
``--refcoco-mask`` (train, test), ``--a2d-query`` (train, test, pretrain-bert) and ``--truncation``
(train, test, predict, serve).

The original's names where it had them: ``--refer_data_root`` (the REFER ``data`` folder),
``--a2d_root`` (A2D-Sentences' ``Release`` folder; the original's ``--a2d_data_root`` too),
``--davis_root`` (the ``davis2017`` folder; also ``--davis_data_root``), ``--splitBy``;
``--data-root`` overrides whichever the chosen data set uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataFormatError

DATASETS = ("refcoco", "refcoco+", "refcocog", "a2d", "davis")
MAX_TOKENS = {"refcoco": 20, "refcoco+": 20, "refcocog": 20, "a2d": 10, "davis": 10}
DEFAULT_ROOTS = {"refcoco": "./refer/data", "a2d": "./a2d/Release", "davis": "./davis2017"}
# refvos.tokenization.TRUNCATIONS, spelled out so that building the parser imports no torch
TRUNCATION_CHOICES = ("original", "standard")
# refvos.data.a2d.QUERY_RULES, spelled out for the same reason
A2D_QUERY_CHOICES = ("full", "original")
ROOT_FLAGS = {"refcoco": "refer_data_root", "a2d": "a2d_root", "davis": "davis_root"}


def add_data_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--dataset``, ``--data-root``, the per-data-set root flags and ``--splitBy``."""
    parser.add_argument(
        "--dataset", choices=DATASETS, default="refcoco", help="data set (default refcoco)"
    )
    parser.add_argument(
        "--data-root", help="root of the chosen data set (overrides the per-data-set flags)"
    )
    parser.add_argument(
        "--refer_data_root",
        help="REFER data folder holding <dataset>/refs(<splitBy>).p, <dataset>/instances.json "
        f"and images/ (default {DEFAULT_ROOTS['refcoco']})",
    )
    parser.add_argument(
        "--a2d_root",
        "--a2d_data_root",
        help=f"A2D-Sentences Release folder (default {DEFAULT_ROOTS['a2d']})",
    )
    parser.add_argument(
        "--davis_root",
        "--davis_data_root",
        help="DAVIS-2017 folder with DAVIS/ and davis_text_annotations/ "
        f"(default {DEFAULT_ROOTS['davis']})",
    )
    parser.add_argument(
        "--splitBy",
        choices=("unc", "umd", "google"),
        help="RefCOCO family split (default unc; umd for refcocog)",
    )


def add_truncation_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, training: bool = False
) -> None:
    """``--truncation {original,standard}``: how expressions longer than the token limit are cut."""
    default = (
        "original with --recipe paper, else the starting checkpoint's rule (--pretrained_refvos / "
        "--resume), else standard"
        if training
        else "the rule the checkpoint records; original for the authors' released files "
        "and with --recipe paper"
    )
    parser.add_argument(
        "--truncation",
        choices=TRUNCATION_CHOICES,
        default=None,
        help="expressions longer than the token limit (20 RefCOCO, 10 A2D / DAVIS): original "
        "slices the ids after adding [CLS]/[SEP] as the authors' code (the [SEP] is lost), "
        f"standard keeps [SEP] (default: {default})",
    )


def add_mask_rule_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--refcoco-mask {union,original}``: how a RefCOCO annotation's polygons make its mask."""
    parser.add_argument(
        "--refcoco-mask",
        choices=("union", "original"),
        default=None,
        help="RefCOCO family masks: union of an annotation's polygons, or original: "
        "the authors' rule, pixels covered by exactly one polygon (overlaps become "
        "background), for exact reproduction (default: union; original with --recipe "
        "paper and test --protocol refvos; test: else the rule the checkpoint records)",
    )


def add_a2d_query_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, protocol: bool = False
) -> None:
    """``--a2d-query {full,original}``: how A2D-Sentences' ``a2d_annotation.txt`` queries are read."""
    default = (
        "original with --protocol refvos or --recipe paper, else the rule the checkpoint records, else "
        "full"
        if protocol
        else "full; train: original with --recipe paper"
    )
    parser.add_argument(
        "--a2d-query",
        choices=A2D_QUERY_CHOICES,
        default=None,
        help="A2D-Sentences queries with a comma: full keeps the whole query (a quoted CSV "
        "field); original cuts it at its first comma, as the authors' code reads the file "
        "(l.split(',')), the text the paper's A2D numbers were computed on "
        f"(default: {default})",
    )


def _refcoco_option(args: argparse.Namespace, flag: str, key: str, value: str | None) -> dict:
    """``{key: value}`` when ``--flag`` is given for the RefCOCO family; refused for other data sets."""
    if not value:
        return {}
    if not args.dataset.startswith("refcoco"):
        raise DataFormatError(f"--{flag} applies to the RefCOCO family, not {args.dataset}")
    return {key: value}


def a2d_query_rule(args: argparse.Namespace, default: str = "full") -> str | None:
    """The A2D query rule (``--a2d-query``, else ``default``); None for other data sets, where
    the flag is refused."""
    if args.dataset != "a2d":
        if args.a2d_query:
            raise DataFormatError(
                f"--a2d-query applies to A2D-Sentences (--dataset a2d), not {args.dataset}"
            )
        return None
    return args.a2d_query or default


def a2d_query_options(rule: str | None) -> dict:
    """``query_rule`` for :func:`refvos.data.build_dataset` (nothing for other data sets)."""
    return {"query_rule": rule} if rule else {}


def mask_rule_options(args: argparse.Namespace) -> dict:
    """``mask_rule`` for the RefCOCO family when ``--refcoco-mask`` is given; refused for others."""
    return _refcoco_option(args, "refcoco-mask", "mask_rule", args.refcoco_mask)


def data_root(args: argparse.Namespace) -> Path:
    """The root folder of ``args.dataset``; a missing folder is an error naming its flag."""
    family = "refcoco" if args.dataset.startswith("refcoco") else args.dataset
    flag = "data-root" if args.data_root else ROOT_FLAGS[family]
    root = Path(args.data_root or getattr(args, ROOT_FLAGS[family]) or DEFAULT_ROOTS[family])
    if not root.is_dir():
        raise DataFormatError(f"--{flag} {root}: folder not found (data set {args.dataset})")
    return root


def split_options(args: argparse.Namespace) -> dict:
    """``split_by`` for the RefCOCO family when ``--splitBy`` is given; refused for other data sets."""
    return _refcoco_option(args, "splitBy", "split_by", args.splitBy)
