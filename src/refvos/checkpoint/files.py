"""Checkpoint files read safely: ``.pth`` files and pretrained folders.

Every ``.pth`` file is read with ``torch.load(weights_only=True)``; the only non-builtin type admitted is
``argparse.Namespace`` (the released files' ``args``). A file that carries anything else is
refused and nothing in it runs; a zip whose records could inflate beyond the file, and tensors
that could exhaust memory, are refused before they are loaded. A pretrained folder
(``config.json`` + ``model.safetensors``, what ``save_pretrained`` writes) is read with
safetensors alone (no pickle).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io.checkpoint_checks import check_archive, check_tensors, check_weights
from ..modeling import RefVOS

FORMAT = "refvos"
VERSION = 1
SAFE_GLOBALS = [argparse.Namespace]


# leading bytes of files people pass by mistake -> what they are
_KNOWN_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image, AVI video...)",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"\x08": "an ONNX model (refvos export's output)",
}
EXPECTED = (
    "expected a .pth checkpoint (refvos format, e.g. best.pth, or the authors' released file) "
    "or a save_pretrained folder (config.json + model.safetensors)"
)
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# the parts of a RefVOS state dict -> the checkpoint dict's entries
_PARTS = {"segmenter.": "model", "text_encoder.": "bert_model"}


def is_pretrained_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding ``config.json`` and ``model.safetensors``."""
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def check_checkpoint_file(path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """``path`` if it can be a PyTorch checkpoint: an existing, non-empty file that starts like
    one (a zip archive, or a pickle for the legacy format). Otherwise :class:`CheckpointError`
    saying what the file is (a folder, a PNG image...) and what was expected. Reads 4 bytes."""
    path = Path(path)
    if path.is_dir():
        if is_pretrained_folder(path):
            return path
        raise CheckpointError(
            f"{what} {path} is a folder without {CONFIG_NAME} and {WEIGHTS_NAME}; {EXPECTED}"
        )
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; {EXPECTED}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK") or head[:1] == b"\x80":  # torch.save's zip, or a legacy pickle
        return path
    kind = next((v for k, v in _KNOWN_MAGIC.items() if head.startswith(k)), None)
    if kind is None:
        kind = (
            "a text file"
            if all(32 <= b < 127 or b in (9, 10, 13) for b in head)
            else "not a PyTorch file"
        )
    raise CheckpointError(f"{what} {path} is {kind}; {EXPECTED}")


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint file as a dict, with ``weights_only=True`` and the minimal allow-list
    (a pretrained folder: :func:`read_pretrained`).

    Raises :class:`CheckpointError` naming the file for a missing, truncated, unsafe or
    non-checkpoint file (saying what the file is when it is not a checkpoint at all), for a zip
    whose records could inflate beyond the file (:func:`check_archive`, before ``torch.load``)
    and for tensors that could exhaust memory (:func:`check_tensors`).
    """
    path = check_checkpoint_file(path)
    if path.is_dir():
        return read_pretrained(path / CONFIG_NAME, path / WEIGHTS_NAME)
    check_archive(path, f"checkpoint {path}")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects outside the allow-list "
            f"(tensors, containers, argparse.Namespace); nothing in it was run{_unsafe_detail(e)}"
        ) from e
    except Exception as e:  # truncated zip, bad pickle stream (KeyError, EOFError, ...), not a zip
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated or not a PyTorch file): {str(e).splitlines()[0]}"
        ) from e
    if not isinstance(obj, dict) or "model" not in obj:
        keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a RefVOS checkpoint: expected a dict with 'model' and "
            f"'bert_model', found {keys}"
        )
    if "bert_model" not in obj:
        raise CheckpointError(
            f"checkpoint {path} has no 'bert_model' (the sentence encoder's weights)"
        )
    check_tensors(obj, f"checkpoint {path}")
    check_weights(obj["model"], f"checkpoint {path}", "model")
    check_weights(obj["bert_model"], f"checkpoint {path}", "bert_model")
    return obj


def read_pretrained(
    config_file: str | os.PathLike, weights_file: str | os.PathLike
) -> dict[str, Any]:
    """The refvos checkpoint dict of a pretrained folder's ``config.json`` and
    ``model.safetensors`` (read by safetensors: no pickle, nothing run), checked as
    :func:`read_checkpoint` checks a ``.pth``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_file} is not a readable JSON file: {str(e)[:120]}") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(
            f'{config_file} is not a refvos config (expected "format": "{FORMAT}")'
        )
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{weights_file} cannot be read as safetensors: {str(e)[:160]}"
        ) from e
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": config.get("version", 0),
        "config": {k: v for k, v in config.items() if k not in ("format", "version")},
        "model": {},
        "bert_model": {},
    }
    for key, tensor in tensors.items():
        prefix = next((p for p in _PARTS if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(
                f"{weights_file}: tensor {key[:80]!r} is not under {' or '.join(_PARTS)}"
            )
        ckpt[_PARTS[prefix]][key[len(prefix) :]] = tensor
    source = f"pretrained folder {Path(weights_file).parent}"
    check_tensors(ckpt, source)
    check_weights(ckpt["model"], source, "model")
    check_weights(ckpt["bert_model"], source, "bert_model")
    return ckpt


def pretrained_config(model: RefVOS) -> dict[str, Any]:
    """The ``config.json`` of ``model``'s pretrained folder."""
    return {
        "format": FORMAT,
        "version": VERSION,
        **getattr(model, "module", model).config.to_dict(),
    }


def pretrained_tensors(model: RefVOS) -> dict[str, torch.Tensor]:
    """``model``'s tensors for ``model.safetensors``: its state dict, contiguous, on the CPU."""
    model = getattr(model, "module", model)
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def _unsafe_detail(e: Exception) -> str:
    """The global torch refused, from its UnpicklingError (never its advice to load unsafely)."""
    import re

    found = re.search(r"(?:GLOBAL|global) ([\w.]+)", str(e))
    return f" (it asks for {found.group(1)})" if found else ""


def is_released_format(ckpt: dict[str, Any]) -> bool:
    return ckpt.get("format") != FORMAT
