"""BERT's encoder in plain PyTorch, with the parameter names of transformers' ``BertModel``.

RefVOS needs only the encoder's forward pass (and its gradients when fine-tuned), which is a
hundred lines; importing transformers' modelling code for it costs seconds of start-up (it
pulls in ``torch._dynamo`` and ``torch.distributed``), which dominated a single ``refvos
predict``. :class:`BertEncoder` computes what ``BertModel(config, add_pooling_layer=True)``
computes with ``token_type_ids`` left at 0 and ``return_dict=False`` (tested against it to
float tolerance), and its ``state_dict`` has the same keys and shapes, so the released
checkpoints' ``bert_model`` and ``save_pretrained`` directories load into it unchanged.
Masked-LM pretraining (``refvos pretrain-bert``) still uses transformers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError

# transformers' names for the activations BERT-family checkpoints use.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class BertEmbeddings(nn.Module):
    """Word + position + token-type (0) embeddings, LayerNorm, dropout: ``(B, T)`` -> ``(B, T, D)``."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], d, padding_idx=cfg["pad_token_id"])
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], d)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], d)
        self.LayerNorm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.dropout = nn.Dropout(cfg["hidden_dropout_prob"])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        x = x + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention; ``bias`` ``(B, 1, 1, T)`` is added to the scores (large negative on padding)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d = cfg["hidden_size"]
        self.num_heads = cfg["num_attention_heads"]
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.dropout = nn.Dropout(cfg["attention_probs_dropout_prob"])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def heads(proj: nn.Linear) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H)
            return proj(x).view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.query), heads(self.key), heads(self.value)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.num_heads) + bias
        probs = self.dropout(scores.softmax(dim=-1))
        return (probs @ v).transpose(1, 2).reshape(b, t, d)


class BertResidual(nn.Module):
    """``LayerNorm(dropout(dense(x)) + residual)``: BertSelfOutput and BertOutput."""

    def __init__(self, cfg: dict[str, Any], in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, cfg["hidden_size"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
        self.dropout = nn.Dropout(cfg["hidden_dropout_prob"])

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertResidual(cfg, cfg["hidden_size"])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["intermediate_size"])
        self.activation = ACTIVATIONS[cfg["hidden_act"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(x))


class BertLayer(nn.Module):
    """One transformer block: ``(B, T, D)`` -> ``(B, T, D)``."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertResidual(cfg, cfg["intermediate_size"])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class BertLayers(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg["num_hidden_layers"]))


class BertPooler(nn.Module):
    """``tanh(dense(h[:, 0]))``: kept because the released checkpoints carry its weights."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["hidden_size"])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertEncoder(nn.Module):
    """BERT with pooler. ``forward(input_ids (B, T) long, attention_mask (B, T) 0/1)`` ->
    ``(last_hidden_state (B, T, D), pooler_output (B, D))``, as ``BertModel(...,
    return_dict=False)``; ``config`` is refvos's ``text_config`` dict."""

    def __init__(self, text_config: dict[str, Any]) -> None:
        super().__init__()
        check_text_config(text_config)
        self.config = dict(text_config)
        self.embeddings = BertEmbeddings(text_config)
        self.encoder = BertLayers(text_config)
        self.pooler = BertPooler(text_config)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embeddings(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # 0 where attended, the dtype's lowest value on padding (transformers' extended mask)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x, self.pooler(x)


def check_text_config(text_config: dict[str, Any]) -> None:
    """Refuse a ``text_config`` this encoder cannot build, with the field and what was expected."""
    act = text_config.get("hidden_act")
    if act not in ACTIVATIONS:
        raise CheckpointError(
            f"text config hidden_act={act!r} is not supported (expected one of {sorted(ACTIVATIONS)})"
        )
    if text_config["hidden_size"] % text_config["num_attention_heads"]:
        raise CheckpointError(
            f"text config hidden_size={text_config['hidden_size']} is not a multiple of "
            f"num_attention_heads={text_config['num_attention_heads']}"
        )
