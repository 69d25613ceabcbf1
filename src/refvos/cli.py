"""The refvos command line: a thin front end over the library.

Each sub-command lives in ``refvos.commands.<module>`` and defines ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; command modules import nothing heavy at
module level, so ``refvos --help`` lists every command without importing torch. Every flag is
accepted with underscores or hyphens (``--model_id`` = ``--model-id``), and the original
RefVOS's flags either work or get a one-line pointer to their counterpart
(:mod:`refvos.commands.original_flags`). A :class:`~refvos.errors.RefVOSError` (a user error)
and an argparse error are printed as one line on stderr and exit with status 2, without a
traceback.
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
    "download": "download",
    "quantize": "quantize",
}

# the extra that brings every optional package a command uses (refvos.deps; others need none)
COMMAND_EXTRAS: dict[str, str] = {
    "train": "train",
    "test": "train",
    "pretrain-bert": "train",
    "demo": "train,lite",
    "make-synthetic": "data",
    "serve": "serve",
    "export": "export",
    "download": "hub",
    "quantize": "openvino",
}

DESCRIPTION = (
    "Segment the object a sentence refers to, in an image or through a video (RefVOS). "
    "'refvos COMMAND --help' describes a command's flags."
)


def _load(module: str):
    return importlib.import_module(f"refvos.commands.{module}")


def _canonical(flag: str) -> str:
    return flag.replace("_", "-")


def normalize_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with every long flag that ``parser`` does not know as typed, but knows with
    ``_`` and ``-`` swapped, rewritten to the spelling it knows (``--a-b=1`` -> ``--a_b=1``)."""
    known = {s for action in parser._actions for s in action.option_strings}
    by_canonical = {_canonical(s): s for s in sorted(known) if s.startswith("--")}
    out = []
    for i, token in enumerate(argv):
        if token == "--":  # everything after is positional
            return out + list(argv[i:])
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if name not in known and _canonical(name) in by_canonical:
                token = by_canonical[_canonical(name)] + eq + value
        out.append(token)
    return out


class Parser(argparse.ArgumentParser):
    """argparse with flag spelling normalised and errors on one line."""

    def parse_known_args(self, args=None, namespace=None):
        if args is not None:
            args = normalize_flags(self, list(args))
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen command's arguments are built (its module alone
    may import heavy parts)."""
    from . import __version__

    parser = Parser(prog="refvos", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"refvos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module in COMMANDS.items():
        mod = _load(module)
        if name == chosen:
            from .commands.original_flags import add_original_flags

            p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
            mod.add_arguments(p)
            add_original_flags(p, name)
            p.set_defaults(_run=mod.run)
        else:  # listed in --help; its arguments are built only when it is chosen
            sub.add_parser(name, help=mod.HELP, add_help=False)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (``SystemExit`` on argparse errors, :class:`RefVOSError` for the
    original's flags that have no counterpart)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        prog = f"refvos {args.command}" if getattr(args, "command", None) else "refvos"
        parser.exit(
            2, f"{prog}: error: unrecognized arguments: {' '.join(extra)} (see '{prog} --help')\n"
        )
    if not hasattr(args, "_run"):
        parser.error(f"unknown command {args.command!r}")
    return args


def _refuse_nul(args) -> None:
    """A NUL character cannot be in a path or a sentence: one line, not a ValueError traceback."""
    from .errors import InputError

    for name, value in vars(args).items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and "\x00" in v:
                raise InputError(f"--{name.replace('_', '-')} contains a NUL character")


# flags that name a RefVOS model / a BERT: a released model's name or a Hub id is resolved to a
# local path (downloaded into the cache when needed) before the command runs
MODEL_FLAGS = ("checkpoint", "checkpoint_flag", "ck_pretrained_refvos")
BERT_FLAGS = ("ck_bert",)


def _resolve_models(args) -> None:
    names = [n for n in MODEL_FLAGS + BERT_FLAGS if isinstance(getattr(args, n, None), str)]
    if not names:
        return
    from .hub.resolve import resolve_checkpoint, resolve_text_encoder

    for name in names:
        resolve = resolve_text_encoder if name in BERT_FLAGS else resolve_checkpoint
        setattr(args, name, resolve(getattr(args, name)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        args = parse(argv)
        _refuse_nul(args)
        from .commands.checks import check_runtime_arguments

        check_runtime_arguments(args)  # --device: refused before anything slow is built
        _resolve_models(args)
        return int(args._run(args) or 0)
    except RefVOSError as e:
        print(f"refvos {command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional package imported at a module's top
        from .deps import missing_extra

        if (missing := missing_extra(e, extra=COMMAND_EXTRAS.get(command))) is None:
            raise
        print(f"refvos {command}: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"refvos {command}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if not out_of_memory(e):
            raise
        import re

        size = re.search(r"allocate (\d+) bytes", str(e))
        detail = (
            f"an allocation of {int(size.group(1)) / 2**30:.2f} GiB failed"
            if size
            else type(e).__name__
        )
        print(
            f"refvos {command}: error: out of memory ({detail}); try a smaller --max-size, fewer frames or "
            "expressions, or a machine with more memory",
            file=sys.stderr,
        )
        return 2


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is a failed allocation: Python's or numpy's MemoryError, torch's
    OutOfMemoryError (CUDA) or its CPU allocator's RuntimeError."""
    text = str(e)
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"
        or "can't allocate memory" in text
        or "CUDA out of memory" in text
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
