"""The RefVOS network: a visual encoder and a sentence encoder fused in a DeepLabv3 head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import RefVOSConfig
from .head import RefVOSHead
from .text_encoder import cls_embedding


class Segmenter(nn.Module):
    """The segmentation part (``model`` in the released checkpoints): ``backbone`` + ``classifier``.

    Split as segment-anything's predictor: :meth:`encode` (the image's features, computed once)
    and :meth:`decode` (a sentence's logits at a requested size). The split lies where the
    sentence first enters: ``encode`` runs the backbone and the head's sentence-independent part
    (ASPP and its projection, :meth:`RefVOSHead.visual`), so a second sentence about the same
    image costs only the fusion and the last convolutions. ``forward(images (B,3,H,W), text
    (B,D) or (1,D)) -> logits (B, classes, H, W)`` is ``decode(encode(images), text, (H, W))``,
    the released pipeline's output (the same operations in the same order).
    """

    def __init__(self, backbone: nn.Module, classifier: RefVOSHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Sentence-independent features ``(B, 256, h, w)`` (stride 8) of normalised images
        ``(B, 3, H, W)``: the backbone, then the head's ASPP and projection."""
        return self.classifier.visual(self.backbone(images))

    def decode(
        self, features: torch.Tensor, text: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Logits ``(B, classes, *size)`` from :meth:`encode`'s features ``(B, 256, h, w)`` and
        sentence vectors ``(B, D)`` (or one ``(1, D)`` shared by all), upsampled bilinearly
        (``align_corners=False``, as the original) to ``size``. The head's logits are cast to
        float before upsampling."""
        if text.shape[0] == 1 and features.shape[0] > 1:
            text = text.expand(features.shape[0], -1)
        logits = self.classifier.decode(features, text)
        return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images), text, tuple(images.shape[-2:]))


class RefVOS(nn.Module):
    """Referring-expression segmentation network.

    Children: ``segmenter`` (its state dict is the released checkpoints' ``model``: 681 entries
    for ``refvos_r101``) and ``text_encoder`` (:class:`~refvos.modeling.bert.BertEncoder`, BertModel's names; the released
    ``bert_model``).
    """

    def __init__(self, config: RefVOSConfig, backbone: nn.Module, text_encoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        head = RefVOSHead(
            config.backbone_channels,
            config.text_dim,
            config.num_classes,
            config.atrous_rates,
            config.head_channels,
        )
        self.segmenter = Segmenter(backbone, head)
        self.text_encoder = text_encoder

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors: ids and mask ``(B, T)`` -> ``(B, D)`` (last-layer [CLS] state)."""
        return cls_embedding(self.text_encoder, input_ids, attention_mask)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image features ``(B, 256, h, w)`` of normalised images ``(B, 3, H, W)`` (the backbone and
        the head's sentence-independent part); computed once per image, they serve every sentence
        about it (:meth:`decode`)."""
        return self.segmenter.encode(images)

    def decode(
        self, features: torch.Tensor, text_embedding: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Float logits ``(B, 2, *size)`` of :meth:`encode_image`'s features ``(B, 256, h, w)`` for
        sentence vectors ``(B, D)`` (or one ``(1, D)`` shared by all), upsampled to ``size``."""
        return self.segmenter.decode(features, text_embedding, size)

    def segment(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 2, H, W)`` of normalised images ``(B, 3, H, W)`` for sentence vectors
        ``(B, D)``, or one ``(1, D)`` vector shared by all images (a video's expression)."""
        return self.segmenter(images, text_embedding)

    def forward(
        self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """``images (B,3,H,W)``, ``input_ids`` / ``attention_mask (B,T)`` -> logits ``(B,2,H,W)``."""
        return self.segment(images, self.encode_text(input_ids, attention_mask))
