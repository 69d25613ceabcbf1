"""``refvos download``: fetch a released model by name into the cache, or list them."""

from __future__ import annotations

import argparse

HELP = "download a released model by name into the cache (--list: the released models)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a released model's name (see --list)")
    parser.add_argument("--list", action="store_true", help="print the released models and exit")
    parser.add_argument("--json", action="store_true", help="with --list: print the table as JSON")
    parser.add_argument("--force", action="store_true", help="download again even when cached")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _paper(row: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in row["paper"].items()) or "-"


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError
    from ..hub.registry import table

    if args.list:
        rows = table()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'name':<14} {'kind':<10} {'dataset':<28} {'tokens':>6}  paper (overall IoU / J&F)")
        for row in rows:
            print(
                f"{row['name']:<14} {row['kind']:<10} {row['dataset']:<28} {row['max_tokens']:>6}  {_paper(row)}"
            )
        return 0
    if not args.name:
        raise InputError("give a released model's name (refvos download --list lists them)")
    from ..hub.resolve import download

    print(download(args.name, progress=not args.quiet, force=args.force))
    return 0
