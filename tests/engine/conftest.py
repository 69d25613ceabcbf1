"""Fixtures of the engine tests: small synthetic RefCOCO data and tiny training runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from refvos.data import build_dataset, synthetic
from tests.conftest import one_torch_thread

IMAGE_SIZE = 48


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def refcoco_root(tmp_path_factory) -> Path:
    """A synthetic RefCOCO-layout data set of 20 images of 48 x 48 pixels."""
    return synthetic.make_refcoco(tmp_path_factory.mktemp("refcoco"), num_images=20,
                                  image_size=IMAGE_SIZE, seed=0)


def train_subset(root: Path, n: int = 6) -> torch.utils.data.Dataset:
    """The first ``n`` training samples, cropped to the image size."""
    ds = build_dataset("refcoco", root, "train", "train", base_size=IMAGE_SIZE, crop_size=IMAGE_SIZE)
    return torch.utils.data.Subset(ds, range(min(n, len(ds))))


def val_subset(root: Path, n: int = 2) -> torch.utils.data.Dataset:
    ds = build_dataset("refcoco", root, "val", "eval")
    return torch.utils.data.Subset(ds, range(min(n, len(ds))))
