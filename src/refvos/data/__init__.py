"""Data sets in their real on-disk formats, RefVOS's annotation files and built-in synthetic data."""

from .base import ReferringDataset, collate
from .build import DATASETS, build_dataset
from .refer import REFER

__all__ = ["DATASETS", "REFER", "ReferringDataset", "build_dataset", "collate"]
