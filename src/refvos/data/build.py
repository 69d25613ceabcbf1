"""The data-set registry: ``build_dataset(name, root, split, mode, **opts)``."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import torch

from ..errors import InputError
from .a2d import A2DDataset
from .davis import DAVISDataset
from .refcoco import RefCOCODataset

DATASETS: dict[str, Callable[..., torch.utils.data.Dataset]] = {
    "refcoco": functools.partial(RefCOCODataset, dataset="refcoco"),
    "refcoco+": functools.partial(RefCOCODataset, dataset="refcoco+"),
    "refcocog": functools.partial(RefCOCODataset, dataset="refcocog"),
    "a2d": A2DDataset,
    "davis": DAVISDataset,
}


def build_dataset(
    name: str, root: str | os.PathLike, split: str, mode: str, **opts
) -> torch.utils.data.Dataset:
    """A Dataset from :data:`DATASETS`; ``opts`` go to its constructor (``max_tokens``,
    ``base_size``, ``crop_size``, ``split_by``, ``annotator``, ``kind``, ``queries_file``, ...)."""
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name](root=root, split=split, mode=mode, **opts)
