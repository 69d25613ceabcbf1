"""Changes to a built network's graph: BatchNorm folding for inference, how the ASPP's atrous
convolutions compute (:func:`with_atrous_form`), dropout rate, and the backbone cut of head-only
training.

Each module declares the conv/BN pairs it applies one after the other with a
``conv_bn_pairs()`` method returning ``((conv child name, BN child name), ...)`` (as
torchvision's quantizable ResNet declares ``fuse_model``): :class:`~refvos.modeling.head.RefVOSHead`,
:class:`~refvos.modeling.head.ASPPPooling`, :class:`~refvos.modeling.resnet.ResNetFeatures`,
:class:`~refvos.modeling.resnet.Bottleneck` and the EfficientNet-Lite0 blocks of
:mod:`refvos.modeling.efficientnet_lite`. A plain ``nn.Sequential`` pairs each ``Conv2d``
with a ``BatchNorm2d`` right after it. A declared pair whose children are not a ``Conv2d`` and a
BatchNorm is an error (:func:`declared_pairs`), so renaming a layer cannot silently disable folding.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import InputError


def declared_pairs(module: nn.Module) -> tuple[tuple[str, str], ...]:
    """The ``(conv, bn)`` child names ``module`` applies in sequence: its own ``conv_bn_pairs()``,
    else (plain ``nn.Sequential``) each ``Conv2d`` followed by a ``BatchNorm2d``. Raises
    :class:`InputError` if a declared pair does not name a ``Conv2d`` and a ``BatchNorm2d`` child."""
    declare = getattr(module, "conv_bn_pairs", None)
    if callable(declare):
        pairs = tuple(declare())
    elif isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        names = list(module._modules)
        return tuple(
            (a, b)
            for a, b in zip(names, names[1:])
            if isinstance(module._modules[a], nn.Conv2d)
            and isinstance(module._modules[b], nn.BatchNorm2d)
        )
    else:
        return ()
    for conv, bn in pairs:
        if not isinstance(module._modules.get(conv), nn.Conv2d) or not isinstance(
            module._modules.get(bn), nn.BatchNorm2d
        ):
            raise InputError(
                f"{type(module).__name__} declares the conv/BN pair ({conv!r}, {bn!r}) but its "
                f"children there are {type(module._modules.get(conv)).__name__} and "
                f"{type(module._modules.get(bn)).__name__}"
            )
    return pairs


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An inference copy of ``module`` (eval mode) with the BatchNorm of every declared pair
    (:func:`declared_pairs`) folded into its convolution's weights (in fp32) and replaced by
    ``Identity``. Under bf16 autocast this removes the BN passes and their bf16 <-> fp32
    conversions (about a third of the time of a ResNet-101 frame on CPU); in fp32 it would change
    results in the last bits, so :class:`~refvos.predictor.Predictor` folds only for bf16 / fp16.
    BatchNorms without running statistics (and subclasses of ``BatchNorm2d``, which may do more
    than normalise) are left alone."""
    module = copy.deepcopy(module).eval()
    for parent in list(module.modules()):
        for c, b in declared_pairs(parent):
            conv, bn = parent._modules[c], parent._modules[b]
            if (
                isinstance(conv, nn.Conv2d)
                and type(bn) is nn.BatchNorm2d
                and bn.track_running_stats
            ):
                parent._modules[c] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = nn.Identity()
    return module


def with_atrous_form(module: nn.Module, form: str) -> nn.Module:
    """``module`` with every :class:`~refvos.modeling.head.AtrousConv2d` computing in ``form``
    (:data:`~refvos.modeling.head.ATROUS_FORMS`): ``module`` itself where they all already do,
    else a copy of its structure that shares its parameters and buffers (no weight is copied;
    ``module`` is left as it was)."""
    from .head import ATROUS_FORMS, AtrousConv2d

    if form not in ATROUS_FORMS:
        raise InputError(f"atrous form must be one of {ATROUS_FORMS}, got {form!r}")
    atrous = [m for m in module.modules() if isinstance(m, AtrousConv2d)]
    if all(m.form == form for m in atrous):
        return module
    shared = {id(t): t for t in (*module.parameters(), *module.buffers())}
    module = copy.deepcopy(module, memo=shared)
    for m in module.modules():
        if isinstance(m, AtrousConv2d):
            m.form = form
    return module


def set_dropout(module: nn.Module, p: float) -> None:
    """Set every ``nn.Dropout`` in ``module`` to probability ``p``; ``p == 0`` swaps them for
    ``nn.Identity`` (a zero-probability dropout still copies its input in training mode)."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Dropout):
                if p == 0:
                    setattr(parent, name, nn.Identity())
                else:
                    child.p = p


def split_backbone(model: nn.Module, tuned_blocks: int) -> tuple[nn.Module, nn.Module]:
    """``model.segmenter.backbone`` (the EfficientNet-Lite0 of ``refvos_lite``) as ``(frozen,
    tuned)``: the stem and all but the last ``tuned_blocks`` block stages, then those stages;
    ``tuned(frozen(x)) == backbone(x)``."""
    body = model.segmenter.backbone.body
    blocks = list(body.blocks)
    if not 0 <= tuned_blocks <= len(blocks):
        raise InputError(f"tuned_blocks must be in 0..{len(blocks)}, got {tuned_blocks}")
    cut = len(blocks) - tuned_blocks
    return nn.Sequential(*body.stem(), *blocks[:cut]), nn.Sequential(*blocks[cut:])
