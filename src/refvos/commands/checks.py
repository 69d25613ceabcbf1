"""Flags shared by several commands (``--device``, ``--precision``, ``--text-config``) and their
checks, run before anything slow is built."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: CUDA if available)"


def add_device_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--device`` (checked by :func:`check_device`)."""
    parser.add_argument("--device", default=None, help=DEVICE_HELP)


def add_runtime_arguments(
    parser: argparse.ArgumentParser | Any,
    precision_default: str = "auto",
    precision_help: str | None = None,
) -> None:
    """``--device`` and ``--precision`` (one of :data:`refvos.runtime.PRECISIONS`)."""
    from ..runtime import PRECISIONS

    add_device_argument(parser)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=precision_default,
        help=precision_help or f"numeric precision (default {precision_default})",
    )


def add_compile_argument(parser: argparse.ArgumentParser | Any, auto_means: str) -> None:
    """``--compile {auto,on,off}`` (torch.compile of the segmentation network); ``auto_means``
    says when ``auto`` compiles for this command."""
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help=f"torch.compile the network (auto: {auto_means}; on: always; off: never)",
    )


def add_backend_argument(parser: argparse.ArgumentParser | Any, int8: bool = True) -> None:
    """``--backend {auto,torch,openvino}`` (see :mod:`refvos.runtime.backend`) and, with ``int8``,
    ``--int8-model`` (an int8 encoder written by ``refvos quantize``)."""
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "openvino"),
        default="auto",
        help="inference engine: auto (default: PyTorch, or OpenVINO where installed and measured "
        'faster with --precision auto), torch, openvino (pip install "refvos[openvino]")',
    )
    if int8:
        parser.add_argument(
            "--int8-model",
            default=None,
            help="an int8 model written by refvos quantize for this checkpoint (runs in OpenVINO)",
        )


def parse_text_config(value: str | None) -> dict[str, Any] | None:
    """``--text-config``: a JSON file or inline JSON object of BertConfig fields (a random text
    encoder's shape), completed by :func:`complete_text_config`; None when not given."""
    from ..errors import InputError

    if value is None:
        return None
    try:
        config = json.loads(value if value.lstrip().startswith("{") else Path(value).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(
            f"--text-config: expected a JSON file or inline JSON object, got {value!r} ({e})"
        ) from e
    if not isinstance(config, dict):
        raise InputError(f"--text-config: expected a JSON object, got {type(config).__name__}")
    return complete_text_config(config)


def complete_text_config(config: dict[str, Any]) -> dict[str, Any]:
    """BertConfig fields of ``--text-config`` with the ones that follow from ``hidden_size`` filled
    in as BERT does (64-wide attention heads, a 4x feed-forward), checked to fit together."""
    from ..errors import InputError
    from ..modeling.config import BERT_CONFIG_KEYS

    unknown = sorted(set(config) - set(BERT_CONFIG_KEYS))
    if unknown:
        raise InputError(
            f"--text-config: unknown fields {unknown}; expected some of {list(BERT_CONFIG_KEYS)}"
        )
    config = dict(config)
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if key in config and not (isinstance(config[key], int) and config[key] >= 1):
            raise InputError(
                f"--text-config: {key} must be a positive integer, got {config[key]!r}"
            )
    if "hidden_size" in config:
        config.setdefault("num_attention_heads", max(1, config["hidden_size"] // 64))
        config.setdefault("intermediate_size", 4 * config["hidden_size"])
    hidden, heads = config.get("hidden_size", 768), config.get("num_attention_heads", 12)
    if hidden % heads:
        raise InputError(
            f"--text-config: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
        )
    return config


def check_runtime_arguments(args: argparse.Namespace) -> None:
    """The shared flags' checks, run once by ``refvos`` for every command after parsing and
    before the command starts: ``--device`` names a device this machine has; ``--backend
    openvino`` / ``--int8-model`` find OpenVINO installed. Under torchrun each
    process takes its own GPU (``LOCAL_RANK``), so the name is checked there instead."""
    from ..engine.distributed import launched_by_torchrun

    if hasattr(args, "device") and not launched_by_torchrun():
        check_device(args.device)
    if getattr(args, "backend", None) == "openvino" or getattr(args, "int8_model", None):
        from ..runtime.openvino_backend import require

        require()  # without the extra: one line naming the install command


def check_device(value: str | None) -> None:
    """``--device``: a device name this machine has (``cuda`` without a GPU is refused)."""
    if value in (None, "auto"):
        return
    from ..errors import InputError
    from ..runtime import resolve_device

    try:
        resolve_device(value)
    except InputError as e:
        raise InputError(f"--device {value}: {e}") from e
