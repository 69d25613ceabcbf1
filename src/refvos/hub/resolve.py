"""One resolver for every place a model is named: a file, a folder, a released model's name
(:data:`refvos.hub.registry.RELEASED`) or a Hugging Face repository id.

A released name is fetched into the cache on first use (:func:`download`), and checked against
the SHA-256 recorded then on every later use.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    is_pretrained_folder,
    load_checkpoint,
    read_checkpoint,
)
from ..errors import CheckpointError, InputError
from ..modeling import RefVOS
from .archive import unpack_bert
from .cache import cache_dir, check_recorded_hash, record_hash, recorded_hash, sha256_file
from .download import fetch
from .registry import BERT_ZIP, CHECKPOINT, ReleasedWeights, released

# "org/name" (a Hugging Face Hub repository id)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# what a file's name ends with: such a value is a (missing) file, never a Hub id
_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar", ".safetensors", ".onnx", ".zip", ".json")


def is_local_model(text: str) -> bool:
    """True for an existing file or pretrained folder: a path wins over a released name (a data
    folder called ``davis`` does not)."""
    return Path(text).is_file() or is_pretrained_folder(text)


def is_hub_id(text: str) -> bool:
    """True for ``org/name`` that is neither an existing path nor a name of a file
    (``runs/best.pth``) nor under an existing folder (``runs/missing``)."""
    return (
        bool(_REPO_ID.match(text))
        and not text.lower().endswith(_FILE_SUFFIXES)
        and not Path(text).exists()
        and not Path(text.split("/")[0]).is_dir()
    )


def cached_path(weights: ReleasedWeights) -> Path:
    """Where ``weights`` live in the cache (the file, or the unpacked folder of a BERT zip)."""
    base = cache_dir() / ("checkpoints" if weights.kind == CHECKPOINT else "bert")
    return base / (weights.filename if weights.kind == CHECKPOINT else weights.name)


def _archive_path(weights: ReleasedWeights) -> Path:
    return cache_dir() / "bert" / weights.filename


def _verify(weights: ReleasedWeights, path: Path) -> None:
    """Load a fetched file through the safe loader, raising to refuse it; a BERT zip is unpacked
    safely into its cache folder (:func:`~refvos.hub.archive.unpack_bert`)."""
    if weights.kind == CHECKPOINT:
        read_checkpoint(path)
    else:
        unpack_bert(path, cached_path(weights))


def download(name: str, progress: bool = True, force: bool = False) -> Path:
    """The local path of the released model ``name`` (a ``.pth``, or a BERT's unpacked folder),
    downloaded into the cache when it is not there. A cached file is checked against its
    recorded SHA-256 (refused when it differs); a file put there by hand (no hash yet) is loaded
    through the safe loader once and its hash recorded."""
    weights = released(name)
    if weights is None:
        raise InputError(f"{name!r} is not a released model; 'refvos download --list' lists them")
    file = cached_path(weights) if weights.kind == CHECKPOINT else _archive_path(weights)
    if force or not file.is_file():
        fetch(weights, file, lambda p: _verify(weights, p), progress=progress)
    elif recorded_hash(file) is None:
        _verify(weights, file)
        record_hash(file, sha256_file(file))
    else:
        check_recorded_hash(file, weights.name)
    if weights.kind == BERT_ZIP:
        folder = cached_path(weights)
        if not (folder / CONFIG_NAME).is_file():  # (a fetch or a first check unpacked it already)
            unpack_bert(file, folder)
        return folder
    return file


def resolve_checkpoint(value: str | os.PathLike) -> str:
    """``value`` as a local checkpoint path: an existing file or pretrained folder as it is, a
    released RefVOS model's name fetched into the cache, a Hub repository id fetched into the hub
    cache (its snapshot folder). Anything else is returned unchanged, for the loader's own error."""
    text = str(value)
    if is_local_model(text):
        return text
    weights = released(text)
    if weights is not None:
        if weights.kind != CHECKPOINT:
            raise InputError(
                f"{weights.name!r} is a pretrained BERT, not a RefVOS model: give it as --ck_bert"
            )
        return str(download(text))
    if is_hub_id(text):
        return str(_hub_snapshot(text))
    return text


def resolve_text_encoder(value: str | os.PathLike) -> str:
    """``--ck_bert``: a released BERT's name as its unpacked folder; anything else unchanged."""
    weights = None if (Path(str(value)) / CONFIG_NAME).is_file() else released(str(value))
    if weights is None:
        return str(value)
    if weights.kind != BERT_ZIP:
        raise InputError(f"{weights.name!r} is a RefVOS model, not a BERT: give it as --checkpoint")
    return str(download(weights.name))


def _hub_snapshot(repo_id: str) -> Path:
    from ..deps import require

    hub = require("huggingface_hub", f"the Hub model {repo_id!r}")
    try:
        config = hub.hf_hub_download(repo_id=repo_id, filename=CONFIG_NAME)
        hub.hf_hub_download(repo_id=repo_id, filename=WEIGHTS_NAME)
    except Exception as e:  # offline, unknown repository, missing file: one line
        raise CheckpointError(
            f"{repo_id} is not a local file or folder, and cannot be fetched as a Hugging Face "
            f"Hub model: {type(e).__name__}: "
            f"{(str(e).strip().splitlines() or [''])[0][:200]}"
        ) from e
    return Path(config).parent


def load_model(
    name_or_path: str | os.PathLike,
    max_tokens: int | None = None,
    truncation: str | None = None,
    **hub_kwargs,
) -> RefVOS:
    """The network named by ``name_or_path``: a ``.pth`` file or pretrained folder, a released
    model's name (its token limit from the registry unless ``max_tokens`` is given), or a Hub
    repository id (through :func:`refvos.hub.folder.from_pretrained`; ``hub_kwargs``: its
    ``revision``, ``cache_dir``, ``local_files_only``, ``token``...)."""
    text = str(name_or_path)
    if not is_local_model(text):
        weights = released(text)
        if weights is not None:
            path = resolve_checkpoint(text)
            return load_checkpoint(
                path, max_tokens=max_tokens or weights.max_tokens, truncation=truncation
            )
        if is_hub_id(text):
            from .folder import from_pretrained

            return from_pretrained(text, max_tokens=max_tokens, truncation=truncation, **hub_kwargs)
        raise InputError(
            f"{text!r} is not a file, a folder, a released model ('refvos download --list') "
            "or a Hugging Face repository id (org/name)"
        )
    return load_checkpoint(text, max_tokens=max_tokens, truncation=truncation)
