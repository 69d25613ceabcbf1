"""Building a network on the meta device without running its random initialisation.

A checkpoint is loaded into a network built on the meta device (names and shapes only; the
checkpoint's tensors are then assigned). Modules still run their initialisers there, and the meta
kernel of ``Tensor.normal_`` (``nn.Embedding``, ``kaiming_normal_``) is a Python reference that
imports ``torch._dynamo`` on its first call: over a second of a single ``refvos predict``, for
values nothing reads. :func:`on_meta_device` skips the initialisers of meta tensors instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.overrides import TorchFunctionMode

# in-place fills a module's initialisation calls (torch.nn.init's functions dispatch their own)
_TENSOR_FILLS = frozenset(
    {
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.fill_,
        torch.Tensor.zero_,
        torch.Tensor.random_,
        torch.Tensor.bernoulli_,
    }
)


class _SkipMetaInit(TorchFunctionMode):
    """Return a meta tensor unchanged from ``torch.nn.init`` functions and in-place fills."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        target = args[0] if args else (kwargs or {}).get("tensor")
        if (
            isinstance(target, torch.Tensor)
            and target.is_meta
            and (func in _TENSOR_FILLS or getattr(func, "__module__", None) == "torch.nn.init")
        ):
            return target
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def on_meta_device() -> Iterator[None]:
    """``torch.device("meta")`` for the modules built inside, with their initialisers skipped."""
    with _SkipMetaInit(), torch.device("meta"):
        yield
