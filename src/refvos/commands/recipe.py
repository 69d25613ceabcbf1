"""``--recipe {refvos,paper}`` of ``refvos train`` and ``refvos test``: every rule in which refvos
and the authors' code (miriambellver/refvos) differ, set at once, each also a flag of its own.

===================  =========  ========  ==================================================
rule (flag)          refvos     paper     the paper's value
===================  =========  ========  ==================================================
``--truncation``     standard   original  ids sliced after [CLS]/[SEP] (the [SEP] is lost)
``--refcoco-mask``   union      original  pixels covered by exactly one polygon
``--a2d-query``      full       original  a query cut at its first comma (``split(',')``)
``--a2d-repeats``    all        last      a repeated (video, instance) row: the last counts
``--davis-overlap``  confident  last      an overlapping pixel goes to the highest object id
``--tf32``           default    off       no TF32 in CUDA matmuls and cuDNN (fp32 as a V100)
``--precision``      auto       fp32      training without autocast (test: fp32 under both)
``--selection``      refvos     paper     ``best.pth`` by validation mean IoU at a 520 short
                                          side, one sentence drawn per ref; A2D on test,
                                          DAVIS on val
===================  =========  ========  ==================================================

Batch size and weight decay are 7 and 1e-6 under both recipes: the paper's text, which
describes the runs behind its numbers; the original's ``args.py`` defaults to 6 and 1e-4, its
1e-4 being, like its 30 epochs and rate 0.01, the torchvision segmentation script's default. ``--base_size N``, the
original's spelling, trains at ``int(0.8 * N)`` whatever the recipe (:mod:`.train`).

A training checkpoint records the rules in its ``args["rules"]``; ``refvos test`` follows the
recorded rules unless a flag or ``--recipe`` says otherwise, and names each such difference in
one note on stderr (the flag's value is used: scoring a model under another rule is a valid
experiment). Resuming a run keeps its rules: a flag that contradicts them is refused.
"""

from __future__ import annotations

import argparse
from typing import Any

RECIPES = ("refvos", "paper")
# rule -> {recipe: value}
RULES: dict[str, dict[str, str]] = {
    "truncation": {"refvos": "standard", "paper": "original"},
    "refcoco_mask": {"refvos": "union", "paper": "original"},
    "a2d_query": {"refvos": "full", "paper": "original"},
    "a2d_repeats": {"refvos": "all", "paper": "last"},
    "davis_overlap": {"refvos": "confident", "paper": "last"},
    "tf32": {"refvos": "default", "paper": "off"},
    "selection": {"refvos": "refvos", "paper": "paper"},
    "precision": {"refvos": "auto", "paper": "fp32"},  # training's (refvos test's default is fp32)
}
# The original validated at its --base_size (default 520) short side during training.
PAPER_SELECTION_SIZE = 520


def flag(rule: str) -> str:
    return "--" + rule.replace("_", "-")


def rules_for(dataset: str, command: str) -> tuple[str, ...]:
    """The rules that apply to ``dataset`` for ``command`` (train or test)."""
    rules = ["truncation", "tf32"]
    if dataset.startswith("refcoco"):
        rules.append("refcoco_mask")
    if dataset == "a2d":
        rules += ["a2d_query", "a2d_repeats"]
    if dataset == "davis":
        rules.append("davis_overlap")
    if command == "train":
        rules += ["selection", "precision"]
    return tuple(rules)


def add_recipe_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, command: str
) -> None:
    default = (
        "the rules the checkpoint records, else refvos"
        if command == "test"
        else "refvos; on --resume the run's own"
    )
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default=None,
        help="paper: every rule of the authors' code at once (--truncation original, "
        "--refcoco-mask original, --a2d-query original, --a2d-repeats last, "
        "--davis-overlap last, --tf32 off"
        + (", --precision fp32, --selection paper" if command == "train" else "")
        + "); refvos: refvos's own rules; a flag of its own overrides one rule "
        f"(default: {default})",
    )


def add_rule_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, command: str
) -> None:
    """``--a2d-repeats``, ``--tf32``, and ``--davis-overlap`` (test) / ``--selection`` (train);
    ``--truncation``, ``--refcoco-mask`` and ``--a2d-query`` live in :mod:`.data_args`."""
    parser.add_argument(
        "--a2d-repeats",
        choices=("all", "last"),
        default=None,
        help="A2D-Sentences rows repeating a (video, instance) pair: all keeps every query, "
        "last only the last row's, as the authors' code (default: all)",
    )
    parser.add_argument(
        "--tf32",
        choices=("default", "off"),
        default=None,
        help="off: TF32 disabled for CUDA matmuls and cuDNN convolutions (full fp32, as the "
        "paper's V100); default: PyTorch's settings (default: default)",
    )
    if command == "test":
        parser.add_argument(
            "--davis-overlap",
            choices=("confident", "last"),
            default=None,
            help="DAVIS merged label map (J, F, --submission): where objects overlap the "
            "pixel goes to the most confident (default) or to the last, highest object "
            "id, as the authors' merge",
        )
    else:
        parser.add_argument(
            "--selection",
            choices=("refvos", "paper"),
            default=None,
            help="how best.pth is chosen. refvos (default): validation overall IoU at the "
            "images' own size, every sentence, RefCOCO val only (A2D / DAVIS need "
            "--select-on-test); paper: the authors' rule, validation mean IoU on "
            "images resized to a 520 short side (--base_size N: N), one sentence "
            "drawn per ref, on RefCOCO val, A2D test, DAVIS val",
        )


def recorded_rules(ckpt_args: Any, truncation: str | None) -> dict[str, str]:
    """The rules a checkpoint's ``args`` record (``truncation``: the checkpoint config's). A
    checkpoint from before ``rules`` records its truncation and A2D query rule only."""
    args = ckpt_args if isinstance(ckpt_args, dict) else {}
    rules = dict(args.get("rules") or {})
    if truncation:
        rules.setdefault("truncation", truncation)
    if args.get("a2d_query"):
        rules.setdefault("a2d_query", args["a2d_query"])
    return {k: v for k, v in rules.items() if k in RULES and isinstance(v, str)}


def resolve_rules(
    args: argparse.Namespace,
    rules: tuple[str, ...],
    recorded: dict[str, str] | None = None,
    source: str = "the checkpoint",
    resuming: bool = False,
    fallback: dict[str, str] | None = None,
    implied: dict[str, tuple[str, str]] | None = None,
) -> tuple[dict[str, str], str | None]:
    """``({rule: value}, note)``: each rule from its flag, else ``implied`` (``{rule: (value,
    the flag implying it)}``), else ``--recipe``, else ``recorded``
    (the checkpoint's), else ``fallback``, else refvos's. ``note``: one line naming the values
    that differ from ``recorded`` (None when none do); when ``resuming`` such a difference is
    refused instead (:class:`~refvos.errors.InputError`)."""
    from ..errors import InputError

    recorded = recorded or {}
    values, differ, refused = {}, [], []
    for rule in rules:
        given = getattr(args, rule, None)
        if given is not None:
            value, origin = given, "given"
        elif rule in (implied or {}):
            value, origin = implied[rule]
        elif args.recipe is not None:
            value, origin = RULES[rule][args.recipe], f"--recipe {args.recipe}"
        elif rule in recorded:
            value, origin = recorded[rule], ""
        else:
            value, origin = (fallback or {}).get(rule, RULES[rule]["refvos"]), ""
        if rule in recorded and value != recorded[rule]:
            differ.append(f"{flag(rule)} {value} ({origin}; it records {recorded[rule]})")
            refused.append(f"{flag(rule)} {recorded[rule]}, not {value} ({origin})")
        values[rule] = value
    if refused and resuming:
        raise InputError(
            f"{source} was trained with "
            + "; with ".join(refused)
            + ": resuming keeps a run's rules"
        )
    note = (
        f"note: {source} was trained under other rules; this run uses " + ", ".join(differ)
        if differ
        else None
    )
    return values, note


def recipe_of(rules: dict[str, str]) -> str:
    """``paper`` or ``refvos`` when every rule is that recipe's, else ``mixed``."""
    for recipe in RECIPES:
        if all(RULES[rule][recipe] == value for rule, value in rules.items()):
            return recipe
    return "mixed"
