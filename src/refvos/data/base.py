"""The shared machinery of the referring-segmentation Datasets.

A data set is a list of :class:`Target` (an image or frame with one object and every sentence
that refers to it). ``mode="train"`` gives one sample per target with one sentence drawn with
torch's RNG (as the original draws one at random); ``mode="eval"`` gives one sample per
(target, sentence), or with ``draw_sentence`` one per target with one sentence drawn at random
(the original's validation during training); ``eval_size`` resizes eval-mode images' shorter
side (the original validated at 520).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataFormatError, InputError, RefVOSError
from ..media.image import MAX_PIXELS
from ..tokenization import get_tokenizer, truncation_report
from .transforms import EvalTransform, TrainTransform

MODES = ("train", "eval")


@dataclass
class Sentence:
    """One expression: its text and the identifiers that go into ``meta`` (e.g. sent_id)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """One (image or frame, object) with every sentence that refers to it."""

    meta: dict[str, Any]
    sentences: list[Sentence]
    source: Any  # what the data set's ``load`` needs (paths, ids)


def read_rgb(path: Path, layout: str) -> np.ndarray:
    """uint8 ``(H, W, 3)`` from an image file; a missing or unreadable file is a DataFormatError."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:  # from the header, before decoding
                raise DataFormatError(
                    f"{path}: image is {im.width}x{im.height} pixels, more than the limit of "
                    f"{MAX_PIXELS:,}"
                )
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as e:
        raise DataFormatError(f"{path}: image not found; expected {layout}") from e
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as e:  # truncated, not an image
        raise DataFormatError(f"{path}: cannot read the image ({e}); expected {layout}") from e


class ReferringDataset(torch.utils.data.Dataset):
    """Base class; subclasses fill ``self.targets`` and implement :meth:`load`.

    Sample: ``image`` float ``(3, H, W)`` normalised, ``mask`` long ``(H, W)`` 0/1 (255 ignore),
    ``input_ids`` / ``attention_mask`` long ``(max_tokens,)``, ``sentence`` str, ``meta`` dict.
    """

    def __init__(
        self,
        mode: str,
        max_tokens: int,
        base_size: int = 416,
        crop_size: int = 480,
        legacy_truncation: bool = False,
        vocab_file: str | os.PathLike | None = None,
        eval_size: int | None = None,
        draw_sentence: bool = False,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        if eval_size is not None and eval_size < 8:
            raise InputError(f"eval_size must be at least 8 pixels, got {eval_size}")
        self.mode = mode
        self.draw_sentence = draw_sentence
        self.max_tokens = max_tokens
        self.legacy_truncation = legacy_truncation
        self.vocab_file = vocab_file
        self.transform = (
            TrainTransform(base_size, crop_size) if mode == "train" else EvalTransform(eval_size)
        )
        self.targets: list[Target] = []
        self._index: list[tuple[int, int]] = []

    def _finalize(self) -> None:
        """Build the sample index once ``self.targets`` is filled."""
        for t in self.targets:
            if not t.sentences:
                raise DataFormatError(f"target {t.meta} has no sentence")
        if self.mode == "train" or self.draw_sentence:
            self._index = [(i, -1) for i in range(len(self.targets))]
        else:
            self._index = [
                (i, j) for i, t in enumerate(self.targets) for j in range(len(t.sentences))
            ]

    def load(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """uint8 image ``(H, W, 3)`` and uint8 mask ``(H, W)`` (0/1) of ``target``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        ti, si = self._index[idx]
        target = self.targets[ti]
        if si < 0:
            si = int(torch.randint(0, len(target.sentences), ()).item())
        sentence = target.sentences[si]
        image, mask = self.load(target)
        if image.shape[:2] != mask.shape:
            raise DataFormatError(
                f"{target.meta}: image is {image.shape[:2]} but its mask is {mask.shape}"
            )
        image_t, mask_t = self.transform(image, mask)
        ids, att = get_tokenizer(self.vocab_file).encode(
            [sentence.text], self.max_tokens, self.legacy_truncation
        )
        meta = {**target.meta, **sentence.meta}
        return {
            "image": image_t,
            "mask": mask_t,
            "input_ids": ids[0],
            "attention_mask": att[0],
            "sentence": sentence.text,
            "meta": meta,
        }


def dataset_expressions(dataset: torch.utils.data.Dataset) -> list[str] | None:
    """Distinct expressions, in order, of a :class:`ReferringDataset` or a ``Subset`` /
    ``ConcatDataset`` of them (no image is read); None for any other Dataset."""
    if isinstance(dataset, torch.utils.data.ConcatDataset):
        parts = [dataset_expressions(d) for d in dataset.datasets]
        return (
            None
            if any(p is None for p in parts)
            else list(dict.fromkeys(e for p in parts for e in p))
        )
    if isinstance(dataset, torch.utils.data.Subset):
        if not isinstance(dataset.dataset, ReferringDataset):
            return None
        keep = {dataset.dataset._index[i][0] for i in dataset.indices}
        targets = [t for i, t in enumerate(dataset.dataset.targets) if i in keep]
    elif isinstance(dataset, ReferringDataset):
        targets = dataset.targets
    else:
        return None
    return list(dict.fromkeys(s.text for t in targets for s in t.sentences))


def dataset_truncation(dataset: torch.utils.data.Dataset) -> dict[str, Any] | None:
    """:func:`~refvos.tokenization.truncation_report` of a data set's expressions at its own
    token limit and vocabulary (None for a Dataset :func:`dataset_expressions` cannot read)."""
    expressions = dataset_expressions(dataset)
    if expressions is None:
        return None
    first = dataset
    while not isinstance(first, ReferringDataset):
        first = (
            first.datasets[0]
            if isinstance(first, torch.utils.data.ConcatDataset)
            else first.dataset
        )
    return truncation_report(expressions, first.max_tokens, first.vocab_file)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``image`` (B,3,H,W), ``mask`` (B,H,W), ``input_ids``/``attention_mask`` (B,T);
    ``sentence`` and ``meta`` become lists. Images of different sizes (eval mode) need batch 1."""
    if not batch:
        raise InputError("cannot collate an empty batch")
    sizes = {tuple(s["image"].shape) for s in batch}
    if len(sizes) > 1:
        raise InputError(
            f"cannot batch images of different sizes {sorted(sizes)}; use batch_size=1 in eval mode"
        )
    out: dict[str, Any] = {
        k: torch.stack([s[k] for s in batch])
        for k in ("image", "mask", "input_ids", "attention_mask")
    }
    out["sentence"] = [s["sentence"] for s in batch]
    out["meta"] = [s["meta"] for s in batch]
    return out


class _CarriedError:
    """A :class:`RefVOSError` raised while a DataLoader worker loaded a sample, sent back in the
    batch's place (torch would re-raise it wrapped in the worker's multi-line traceback)."""

    def __init__(self, error: RefVOSError) -> None:
        self.error = error


class _Carrying(torch.utils.data.Dataset):
    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.dataset[key]
        except RefVOSError as e:
            return _CarriedError(e)


class _CarryingCollate:
    def __init__(self, collate_fn: Any) -> None:
        self.collate_fn = collate_fn

    def __call__(self, batch: list[Any]) -> Any:
        carried = next((s for s in batch if isinstance(s, _CarriedError)), None)
        return carried if carried is not None else self.collate_fn(batch)


def worker_context() -> str | None:
    """The multiprocessing start method for DataLoader workers: ``"forkserver"`` once OpenVINO
    is loaded in this process (its threads do not survive a fork), else None (PyTorch's
    default, fork on Linux)."""
    return "forkserver" if "openvino" in sys.modules else None


class DataLoader(torch.utils.data.DataLoader):
    """``torch.utils.data.DataLoader`` that re-raises a :class:`RefVOSError` of a worker as it
    is: the user sees the project's one-line error naming the file, whatever ``num_workers``.
    Workers are started by a fork server instead of forking this process when OpenVINO is
    loaded in it (the OpenVINO backend, ``refvos quantize``): forking a process that runs
    OpenVINO's thread pool crashes it now and then."""

    def __init__(
        self, dataset: torch.utils.data.Dataset, *args: Any, collate_fn: Any = None, **kwargs: Any
    ) -> None:
        from torch.utils.data import default_collate

        if kwargs.get("num_workers", 0) > 0 and "multiprocessing_context" not in kwargs:
            kwargs["multiprocessing_context"] = worker_context()
        super().__init__(
            _Carrying(dataset),
            *args,
            collate_fn=_CarryingCollate(collate_fn or default_collate),
            **kwargs,
        )

    def __iter__(self) -> Any:
        for batch in super().__iter__():
            if isinstance(batch, _CarriedError):
                raise batch.error
            yield batch
