"""Masks as the metrics take them: numpy arrays or torch tensors, boolean or integer 0/1."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError


def to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array or (possibly CUDA) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_mask(x: Any, name: str) -> np.ndarray:
    """Boolean mask from a bool or 0/1 integer array / tensor; other values are an error."""
    a = to_numpy(x)
    if a.dtype == bool:
        return a
    if a.size and (a.min() < 0 or a.max() > 1):
        raise InputError(
            f"{name} must be boolean or 0/1, found values in [{a.min()}, {a.max()}]"
            + ("; pass ignore=(gt == 255) for ignored pixels" if name == "gt" else "")
        )
    return a.astype(bool)


def check_shapes(**masks: np.ndarray | None) -> None:
    shapes = {k: v.shape for k, v in masks.items() if v is not None}
    if len(set(shapes.values())) > 1:
        raise InputError(f"mask shapes differ: {shapes}")
