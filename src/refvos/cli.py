"""The ``refvos`` command line: a thin front end over the library.

Each sub-command lives in ``refvos.commands.<module>`` and defines ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. A :class:`~refvos.errors.RefVOSError`
(a user error) is printed as one line on stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import RefVOSError

# command name -> module in refvos.commands
COMMANDS: dict[str, str] = {
    "train": "train",
    "test": "test",
    "predict": "predict",
    "serve": "serve",
    "demo": "demo",
    "make-synthetic": "make_synthetic",
    "pretrain-bert": "pretrain_bert",
    "export": "export",
    "export-original": "export_original",
}


def _load(module: str):
    return importlib.import_module(f"refvos.commands.{module}")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen command's module is imported."""
    parser = argparse.ArgumentParser(prog="refvos", description=__doc__.splitlines()[0])
    from . import __version__

    parser.add_argument("--version", action="version", version=f"refvos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module in COMMANDS.items():
        if name == chosen:
            mod = _load(module)
            p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
        else:  # listed in --help without importing its (possibly heavy) module
            sub.add_parser(name, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.error(f"unknown command {args.command!r}")
    try:
        return int(args._run(args) or 0)
    except RefVOSError as e:
        print(f"refvos {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"refvos {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
