"""A faithful re-enactment of the original RefVOS pipelines (miriambellver/refvos), for comparison.

Per-frame inference, as the original ``test.py``: every frame is read from disk with PIL,
normalised, its expression tokenised and **run through BERT again**, the network runs in fp32 at
batch 1 in NCHW memory format under ``torch.no_grad``, the mask is the argmax, and each iteration
ends with ``del``, ``gc.collect()`` and (on CUDA) ``torch.cuda.empty_cache()``.

Training step, as the original ``train_one_epoch``: BERT forward (eval mode, its trainable layers
receive gradients), ``[CLS]`` of the last layer into the segmentation network, 2-class
cross-entropy with ``ignore_index=255`` (mean over non-ignored pixels), ``optimizer.zero_grad()``
(zero-filled gradients, as torch 1.x), ``backward``, SGD ``step``, ``loss.item()``, then ``del``,
``gc.collect()`` and ``torch.cuda.empty_cache()``. fp32, NCHW.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from refvos.media.image import to_tensor
from refvos.tokenization import get_tokenizer


def _collect(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def original_video(
    model, frame_paths: list[Path], expression: str, device: torch.device
) -> list[np.ndarray]:
    """Masks ``(H, W)`` bool per frame, the original way. ``model`` must be in NCHW format, fp32."""
    tokenizer = get_tokenizer()
    masks = []
    for path in frame_paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        image = to_tensor(img)[None].to(device)
        sentences, attentions = tokenizer.encode([expression], model.config.max_tokens)
        sentences, attentions = sentences.to(device), attentions.to(device)
        with torch.no_grad():
            last_hidden_states = model.text_encoder(sentences, attention_mask=attentions)[0]
            embedding = last_hidden_states[:, 0, :]
            output = model.segmenter(image, embedding)
            pred = output.argmax(1)
        masks.append(pred[0].cpu().numpy().astype(bool))
        del image, sentences, attentions, last_hidden_states, embedding, output, pred
        _collect(device)
    return masks


def original_param_groups(model) -> list[dict]:
    """The original's SGD groups: backbone, classifier, BERT encoder layers 0..L-3, pooler."""
    enc = model.text_encoder
    for p in enc.parameters():
        p.requires_grad_(False)
    layers = enc.encoder.layer
    text_layers = [p for layer in layers[: max(0, len(layers) - 2)] for p in layer.parameters()]
    pooler = list(enc.pooler.parameters()) if enc.pooler is not None else []
    for p in text_layers + pooler:
        p.requires_grad_(True)
    for p in model.segmenter.parameters():
        p.requires_grad_(True)
    groups = [
        {"params": list(model.segmenter.backbone.parameters())},
        {"params": list(model.segmenter.classifier.parameters())},
        {"params": text_layers},
        {"params": pooler},
    ]
    return [g for g in groups if g["params"]]


def plain_convolutions(model):
    """``model`` with refvos's :class:`~refvos.modeling.head.AtrousConv2d` turned back into
    torchvision's plain ``Conv2d`` (same weights), as the original's ASPP trains: every tap,
    including those that only see padding."""
    from refvos.modeling.head import AtrousConv2d

    for m in model.modules():
        if isinstance(m, AtrousConv2d):
            m.__class__ = torch.nn.Conv2d
    return model


class OriginalTrainStep:
    """One optimizer step of the original's ``train_one_epoch`` on a given batch (torchvision's
    plain convolutions: :func:`plain_convolutions`)."""

    def __init__(self, model, device: torch.device, lr: float = 0.01) -> None:
        self.model = plain_convolutions(model).to(device)
        self.device = device
        self.optimizer = torch.optim.SGD(
            original_param_groups(model), lr=lr, momentum=0.9, weight_decay=1e-6
        )

    def __call__(self, batch: dict) -> float:
        model, device = self.model, self.device
        model.train()
        model.text_encoder.eval()
        image = batch["image"].to(device)
        target = batch["mask"].to(device)
        sentences = batch["input_ids"].to(device)
        attentions = batch["attention_mask"].to(device)
        last_hidden_states = model.text_encoder(sentences, attention_mask=attentions)[0]
        embedding = last_hidden_states[:, 0, :]
        output = model.segmenter(image, embedding)
        loss = F.cross_entropy(output, target, ignore_index=255)
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        del image, target, sentences, attentions, last_hidden_states, embedding, output, loss
        _collect(device)
        return value
