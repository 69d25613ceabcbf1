"""The frozen encoders' outputs, computed once, for training and scoring a head on them.

When the sentence encoder and the first blocks of the backbone are frozen (``make demo``'s
recipe), their outputs do not change during training: :func:`encode_split` reads a RefCOCO-layout
split through ``build_dataset`` and runs the frozen part of the backbone once per image, and a
:class:`SentenceTable` encodes each distinct expression once. :mod:`refvos.demo.head_trainer`
trains and scores the rest of the network on the resulting :class:`CachedSplit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import build_dataset, collate
from ..errors import InputError
from ..media.image import denormalize, to_tensor
from ..modeling import RefVOS
from ..runtime import autocast


@dataclass
class CachedSplit:
    """A split's samples with the frozen encoders' outputs cached.

    ``features`` float ``(I, C, h, w)`` (one per image), ``image_index`` long ``(N,)``,
    ``text_index`` long ``(N,)`` (rows of the shared sentence-vector table), ``masks`` uint8
    ``(N, H, W)`` (0/1, 255 ignore), ``images`` uint8 ``(I, H, W, 3)``, ``sentences`` and
    ``metas`` (N lists).
    """

    features: torch.Tensor
    image_index: torch.Tensor
    text_index: torch.Tensor
    masks: torch.Tensor
    images: np.ndarray
    sentences: list[str]
    metas: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.sentences)

    def samples_of(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of ``images`` (image rows, ``(G,)``): their indices ``(S,)`` and, for each,
        the position of its image in ``images`` ``(S,)``."""
        hit = self.image_index[:, None] == images[None, :]  # (N, G)
        samples, local = hit.nonzero(as_tuple=True)
        return samples, local


class SentenceTable:
    """Sentence vectors ``(U, D)`` of every distinct expression, computed once with the frozen encoder."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[torch.Tensor] = []
        self.attention: list[torch.Tensor] = []
        self.vectors: torch.Tensor | None = None

    def add(self, sentence: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
        """The row of ``sentence`` (a new row the first time it is seen)."""
        if sentence not in self.index:
            self.index[sentence] = len(self.index)
            self.ids.append(input_ids)
            self.attention.append(attention_mask)
        return self.index[sentence]

    @torch.inference_mode()
    def encode(self, model: RefVOS, batch_size: int = 256) -> torch.Tensor:
        """Encode the sentences not yet encoded; returns all vectors ``(U, D)`` float32."""
        done = 0 if self.vectors is None else len(self.vectors)
        new = []
        for i in range(done, len(self.ids), batch_size):
            ids = torch.stack(self.ids[i : i + batch_size])
            att = torch.stack(self.attention[i : i + batch_size])
            new.append(model.encode_text(ids, att).float())
        if new:
            parts = ([] if self.vectors is None else [self.vectors]) + new
            self.vectors = torch.cat(parts)
        return self.vectors


@torch.inference_mode()
def encode_split(
    model: RefVOS,
    root: Path,
    splits: tuple[str, ...],
    table: SentenceTable,
    precision: str,
    frozen: nn.Module,
) -> CachedSplit:
    """Read ``splits`` through ``build_dataset("refcoco", ..., mode="eval")`` (every
    (object, sentence) pair), add their sentences to ``table`` and run the ``frozen`` part of the
    backbone once per image (on the CPU, autocast to ``precision``, features kept in float32)."""
    image_pos: dict[int, int] = {}
    raw_images: list[np.ndarray] = []
    image_index, text_index, masks, sentences, metas = [], [], [], [], []
    for split in splits:
        ds = build_dataset("refcoco", root, split, "eval", max_tokens=model.config.max_tokens)
        loader = torch.utils.data.DataLoader(ds, batch_size=64, collate_fn=collate)
        for batch in loader:
            for k, meta in enumerate(batch["meta"]):
                if meta["image_id"] not in image_pos:
                    image_pos[meta["image_id"]] = len(raw_images)
                    raw_images.append(denormalize(batch["image"][k]))
                image_index.append(image_pos[meta["image_id"]])
                text_index.append(
                    table.add(
                        batch["sentence"][k], batch["input_ids"][k], batch["attention_mask"][k]
                    )
                )
                masks.append(batch["mask"][k].to(torch.uint8))
                sentences.append(batch["sentence"][k])
                metas.append(meta)
    if not sentences:
        raise InputError(f"{root}: no samples in splits {splits}")
    images = np.stack(raw_images)
    device = torch.device("cpu")
    feats = []
    frozen.eval()
    for i in range(0, len(images), 32):
        x = torch.stack([to_tensor(image) for image in images[i : i + 32]])
        with autocast(device, precision):
            feats.append(frozen(x).float())
    return CachedSplit(
        torch.cat(feats),
        torch.tensor(image_index),
        torch.tensor(text_index),
        torch.stack(masks),
        images,
        sentences,
        metas,
    )
