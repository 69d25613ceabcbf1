"""Reading and writing checkpoints, safely.

Two layouts are read:

- **released** (the authors' ``.pth`` files): ``model`` (the segmentation network, 681 entries
  for ResNet-101), ``bert_model`` (a ``BertModel`` state dict), ``args`` (an
  ``argparse.Namespace``) and optionally ``optimizer``, ``epoch``, ``lr_scheduler``.
- **refvos**: the same ``model`` / ``bert_model`` pair plus ``format: "refvos"``, ``version``,
  ``config`` (a :class:`~refvos.modeling.RefVOSConfig` dict, so the file rebuilds its network)
  and, for training checkpoints, the state needed to resume.

A third, the **pretrained folder** that ``save_pretrained`` writes (Hugging Face's layout):
``config.json`` (``format``, ``version`` and the config) and ``model.safetensors`` (the network's
``state_dict``: ``segmenter.*``, ``text_encoder.*``), read with safetensors alone (no pickle).

Files are read by :mod:`refvos.checkpoint.files` (``torch.load(weights_only=True)`` with a
minimal allow-list; safetensors for a folder). Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, RefVOSError
from ..io import atomic_open
from ..io.checkpoint_checks import MAX_PARAMETERS
from ..modeling import RefVOS, RefVOSConfig, build_from_config
from ..modeling.config import BERT_BASE_UNCASED
from ..modeling.meta import on_meta_device
from ..modeling.state_dict import check_fits, load_strict
from ..modeling.text_encoder import TEXT_OPTIONAL_KEYS, infer_text_config, load_text_state_dict
from ..tokenization import check_truncation
from .files import (
    FORMAT,
    VERSION,
    is_released_format,
    read_checkpoint,
)

# Token limit of the released models by the data set they were trained on.
RELEASED_MAX_TOKENS = {"a2d": 10, "davis": 10}


def config_of(
    ckpt: dict[str, Any],
    source: str = "checkpoint",
    max_tokens: int | None = None,
    truncation: str | None = None,
) -> RefVOSConfig:
    """The network configuration of a loaded checkpoint (read off the shapes for released files),
    its types and ranges checked, and checked to describe exactly the checkpoint's weights (names
    and shapes, on a network built on the meta device: nothing is allocated).

    ``truncation``: overrides the expression-cutting rule; otherwise a refvos checkpoint's own
    (``"standard"`` when it predates the field) and ``"original"`` for a released file, whose
    models the authors' code trained with that rule.
    """
    return _config_and_skeleton(ckpt, source, max_tokens, truncation)[0]


def _config_and_skeleton(
    ckpt: dict[str, Any],
    source: str = "checkpoint",
    max_tokens: int | None = None,
    truncation: str | None = None,
) -> tuple[RefVOSConfig, RefVOS]:
    """:func:`config_of` and the meta-device network it was checked on."""
    config = _read_config(ckpt, source, max_tokens, truncation)
    return config, _check_describes(config, ckpt, source)


def _read_config(
    ckpt: dict[str, Any], source: str, max_tokens: int | None, truncation: str | None
) -> RefVOSConfig:
    if not is_released_format(ckpt):
        version = ckpt.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CheckpointError(
                f"{source}: 'version' must be a positive integer, got {str(version)[:40]!r}"
            )
        if version > VERSION:
            raise CheckpointError(
                f"{source}: refvos format version {version} is newer than {VERSION}"
            )
        try:
            config = RefVOSConfig.from_dict(ckpt.get("config")).validate()
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: invalid 'config' entry: {e}"[:400]) from e
    else:
        text_config = infer_text_config(ckpt["bert_model"])
        model = ckpt["model"]
        if "backbone.layer4.0.conv1.weight" not in model:
            raise CheckpointError(
                f"{source}: 'model' is not a RefVOS ResNet-101 state dict "
                "(no backbone.layer4.0.conv1.weight)"
            )
        args = ckpt.get("args")
        dataset = getattr(args, "dataset", None) if args is not None else None
        config = RefVOSConfig(
            variant="refvos_r101",
            backbone="resnet101",
            backbone_channels=int(model["backbone.layer4.0.conv1.weight"].shape[1] * 2),
            text_config={**BERT_BASE_UNCASED, **text_config},
            max_tokens=RELEASED_MAX_TOKENS.get(str(dataset), 20),
            truncation="original",
        )
    if max_tokens is not None:
        config.max_tokens = int(max_tokens)
    if truncation is not None:
        config.truncation = check_truncation(truncation)
    try:
        config.validate()
    except ValueError as e:
        raise CheckpointError(
            f"{source}: {'' if is_released_format(ckpt) else 'invalid config: '}{e}"[:400]
        ) from e
    return config


def _segmenter_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``model`` without DDP's ``module.`` prefix and the unused auxiliary classifier."""
    seg_state = ckpt["model"]
    if any(k.startswith("module.") for k in seg_state):
        seg_state = {k.removeprefix("module."): v for k, v in seg_state.items()}
    return {k: v for k, v in seg_state.items() if not k.startswith("aux_classifier.")}


def check_config(
    config: RefVOSConfig, source: str, error: type[RefVOSError] = CheckpointError
) -> RefVOS:
    """The checks every checkpoint's config passes when it is loaded: each field's type and range
    (:meth:`RefVOSConfig.validate`: at most 48 text layers, ``max_position_embeddings`` at least
    the token limit...), and the network it describes builds, on the meta device (nothing
    allocated), with at most :data:`MAX_PARAMETERS` parameters. Returns that meta network.

    The loader applies it to every file; ``refvos train`` applies it to a new run's network before
    training starts, so that whatever trains can be loaded again. One-line ``error`` naming
    ``source`` otherwise."""
    try:
        config.validate()
    except ValueError as e:
        raise error(f"{source}: invalid config: {e}"[:400]) from e
    try:
        with on_meta_device():
            skeleton = build_from_config(config)
    except (ValueError, TypeError, RuntimeError) as e:
        raise error(
            f"{source}: its config does not build a network: {str(e).splitlines()[0][:200]}"
        ) from e
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise error(
            f"{source}: its config describes {count:,} parameters, more than the limit of "
            f"{MAX_PARAMETERS:,}"
        )
    return skeleton


def _check_describes(config: RefVOSConfig, ckpt: dict[str, Any], source: str) -> RefVOS:
    """The network ``config`` describes (:func:`check_config`), built on the meta device, checked
    to hold exactly the checkpoint's tensor names and shapes."""
    skeleton = check_config(config, source)
    _check_parts_fit(skeleton, ckpt, source)
    return skeleton


def _network_for(
    skeleton: RefVOS, ckpt: dict[str, Any], config: RefVOSConfig
) -> tuple[RefVOS, bool]:
    """The network to load ``ckpt`` into and whether it takes the checkpoint's tensors: the meta
    ``skeleton`` when the checkpoint holds every tensor it has (no allocation, no random
    initialisation and no copy, which for ResNet-101 + BERT-base take seconds), else a network
    built afresh that the weights are copied into."""
    loaded = {f"segmenter.{k}" for k in _segmenter_state(ckpt)} | {
        f"text_encoder.{k}" for k in ckpt["bert_model"]
    }
    held = [name for name, _ in skeleton.named_parameters()] + [
        name for name, _ in skeleton.named_buffers()
    ]
    if all(name in loaded for name in held):  # (a non-persistent buffer is never loaded)
        return skeleton, True
    return build_from_config(config), False


def _check_parts_fit(model: RefVOS, ckpt: dict[str, Any], source: str) -> None:
    check_fits(
        model.segmenter,
        _segmenter_state(ckpt),
        f"{source}: the segmentation weights of a {model.config.variant} network",
    )
    check_fits(
        model.text_encoder,
        ckpt["bert_model"],
        f"{source}: the text encoder's weights",
        TEXT_OPTIONAL_KEYS,
    )


def _check_finite(state: dict[str, torch.Tensor], source: str, part: str) -> None:
    for k, v in state.items():
        # a NaN or an infinity makes the sum non-finite; only then (or when finite values
        # overflow the sum) is every element tested, which costs seconds on BERT-base
        if (
            torch.is_tensor(v)
            and v.is_floating_point()
            and not (torch.isfinite(v.sum()) or torch.isfinite(v).all())
        ):
            raise CheckpointError(f"{source}: '{part}' weight {k} contains NaN or infinite values")


def load_state_into(
    model: RefVOS, ckpt: dict[str, Any], source: str = "checkpoint", assign: bool = False
) -> None:
    """Load ``model`` / ``bert_model`` into an existing network (strict; clear error on mismatch).
    Names and shapes are checked before any value is read (NaN check, copy). ``assign``: the
    network takes the checkpoint's tensors (a network on the meta device)."""
    _check_parts_fit(model, ckpt, source)
    seg_state = _segmenter_state(ckpt)
    _check_finite(seg_state, source, "model")
    _check_finite(ckpt["bert_model"], source, "bert_model")
    load_strict(
        model.segmenter,
        seg_state,
        f"{source}: the segmentation weights of a {model.config.variant} network",
        assign=assign,
    )
    load_text_state_dict(model.text_encoder, ckpt["bert_model"], source, assign=assign)


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    max_tokens: int | None = None,
    truncation: str | None = None,
) -> RefVOS:
    """Build the network a checkpoint describes and load its weights; returns it in eval mode.

    Accepts refvos checkpoints and the authors' released files (ResNet-101 + BERT-base; the BERT
    configuration is read off the weights, no download). ``max_tokens`` overrides the token limit,
    ``truncation`` the expression-cutting rule (see :func:`config_of`).
    """
    return model_from_checkpoint(
        read_checkpoint(path, map_location="cpu"), str(path), map_location, max_tokens, truncation
    )


def model_from_checkpoint(
    ckpt: dict[str, Any],
    source: str,
    map_location: str | torch.device = "cpu",
    max_tokens: int | None = None,
    truncation: str | None = None,
) -> RefVOS:
    """The network a checkpoint dict (from :func:`read_checkpoint` / :func:`read_pretrained`)
    describes, with its weights, in eval mode."""
    config, skeleton = _config_and_skeleton(ckpt, source, max_tokens, truncation)
    model, assign = _network_for(skeleton, ckpt, config)
    load_state_into(model, ckpt, source, assign=assign)
    return model.to(map_location).eval()


def checkpoint_dict(model: RefVOS, **extra: Any) -> dict[str, Any]:
    """The refvos-format dict of ``model`` (unwrapping DDP) plus ``extra`` entries."""
    model = getattr(model, "module", model)
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "model": model.segmenter.state_dict(),
        "bert_model": model.text_encoder.state_dict(),
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, model: RefVOS, **extra: Any) -> Path:
    """Write ``model`` in refvos's format, atomically; ``extra`` (optimizer, epoch, ...) is stored
    too and must be made of tensors, containers and scalars."""
    return write_checkpoint(path, checkpoint_dict(model, **extra))


def write_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """``torch.save`` a checkpoint dict atomically (temporary file, fsync, rename)."""
    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:
            torch.save(ckpt, f)
    except (
        OSError,
        RuntimeError,
    ) as e:  # disk full (torch's zip writer raises RuntimeError), quota, permissions
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e).strip().splitlines()[0]
        with contextlib.suppress(OSError):
            reason += f" ({shutil.disk_usage(path.parent).free:,} bytes free on that disk)"
        raise CheckpointError(
            f"cannot write checkpoint {path}: {reason}; "
            + (f"the previous {path.name} is unchanged" if path.exists() else "nothing was written")
        ) from e
    return path


def to_released_format(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Convert a refvos checkpoint dict to the authors' layout (``args`` as a Namespace)."""
    if is_released_format(ckpt):
        return ckpt
    if ckpt["config"]["variant"] != "refvos_r101":
        raise CheckpointError(
            f"only refvos_r101 checkpoints have a released layout; this one is {ckpt['config']['variant']}"
        )
    args = dict(ckpt.get("args") or {})
    args.setdefault("model", "deeplabv3_resnet101")
    args.setdefault("dataset", "refcoco")
    out = {
        "model": ckpt["model"],
        "bert_model": ckpt["bert_model"],
        "args": argparse.Namespace(**args),
    }
    for key in ("optimizer", "epoch", "lr_scheduler"):
        if key in ckpt:
            out[key] = ckpt[key]
    return out
