"""Parameter groups as the original's ``train.py`` (which parameters train, in which group) and
the optimiser over them (:func:`build_optimizer`: the original's SGD, or AdamW).

:func:`build_param_groups`: ``backbone``, ``head``, ``text_layers`` (BERT encoder layers 0-9)
and ``text_pooler``; the BERT embeddings and its last two layers are never updated (for encoders
of another depth: every layer but the last two). ``text_encoder_training="full"`` trains every
text-encoder parameter, ``"frozen"`` none.
"""

from __future__ import annotations

import torch

from ..errors import InputError

TEXT_ENCODER_TRAINING = ("original", "full", "frozen")
FROZEN_LAST_LAYERS = 2  # the original never updates BERT-base's layers 10 and 11


def build_param_groups(
    model: torch.nn.Module, text_encoder_training: str = "original"
) -> list[dict]:
    """SGD parameter groups ``[{"name", "params"}, ...]``; sets ``requires_grad`` accordingly.

    ``original``: backbone, head, text encoder layers ``0 .. L-3`` and pooler (embeddings and the
    last two layers frozen); ``full``: backbone, head, whole text encoder; ``frozen``: backbone and
    head only. Empty groups (e.g. no trainable layer in a 2-layer encoder) are left out.
    """
    if text_encoder_training not in TEXT_ENCODER_TRAINING:
        raise InputError(f"text_encoder_training must be one of {TEXT_ENCODER_TRAINING}")
    enc = model.text_encoder
    groups = [
        ("backbone", list(model.segmenter.backbone.parameters())),
        ("head", list(model.segmenter.classifier.parameters())),
    ]
    for p in model.segmenter.parameters():
        p.requires_grad_(True)
    for p in enc.parameters():
        p.requires_grad_(text_encoder_training == "full")
    if text_encoder_training == "full":
        groups.append(("text_encoder", list(enc.parameters())))
    elif text_encoder_training == "original":
        try:
            layers, pooler = enc.encoder.layer, enc.pooler
        except AttributeError as e:
            raise InputError(
                "text_encoder_training='original' needs a BERT-like encoder (encoder.layer, pooler); "
                "use 'full' or 'frozen'"
            ) from e
        trainable = [
            p
            for layer in layers[: max(0, len(layers) - FROZEN_LAST_LAYERS)]
            for p in layer.parameters()
        ]
        pooled = list(pooler.parameters()) if pooler is not None else []
        for p in trainable + pooled:
            p.requires_grad_(True)
        groups += [("text_layers", trainable), ("text_pooler", pooled)]
    return [{"name": name, "params": params} for name, params in groups if params]


# devices whose fused optimiser kernels refvos uses (PyTorch has them for SGD and AdamW there)
FUSED_DEVICES = ("cpu", "cuda")


def build_optimizer(config, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """The optimiser of a run over ``groups`` (:func:`build_param_groups`) at rate ``lr``:
    ``config.optimizer`` ``"sgd"`` (the original's: ``config.momentum``, ``config.weight_decay``)
    or ``"adamw"`` (``config.weight_decay`` decoupled, default betas).

    PyTorch's fused update (one kernel over all the parameters instead of a loop of small
    operations per tensor) where the parameters' device has one: the loop's step within a
    rounding, in a half to a third of its time on a CPU (``benchmarks/optimizer_step.py``;
    docs/BENCHMARKS.md, run Q). Elsewhere the per-tensor loop."""
    if config.optimizer == "adamw":
        optimizer, kwargs = torch.optim.AdamW, {"weight_decay": config.weight_decay}
    else:
        optimizer = torch.optim.SGD
        kwargs = {"momentum": config.momentum, "weight_decay": config.weight_decay}
    params = [p for g in groups for p in g["params"]]
    fused = all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)
    return optimizer(groups, lr=lr, fused=fused or None, **kwargs)
