"""Checks of an untrusted checkpoint that touch no values and allocate nothing.

A file of a few MB can inflate to gigabytes: ``torch.load`` decompresses every record of its zip
archive. :func:`check_archive` reads the zip's directory BEFORE ``torch.load`` and refuses
compressed records (``torch.save`` stores them uncompressed) and records whose declared sizes add
up to more than the file holds. A file of a few kB can also describe tensors of billions of
elements: a stride-0 ``expand`` of one number, many views of one storage, sparse or meta tensors.
:func:`check_tensors` walks the loaded object and refuses those BEFORE any NaN check or network
build reads them. Together they keep the memory a checkpoint can make refvos allocate about the
size of the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

MAX_TENSOR_ELEMENTS = 1 << 28  # 268M elements (1 GiB in fp32); BERT's word embedding has 23M
MAX_PARAMETERS = 1_000_000_000  # of the network a config describes (RefVOS ResNet-101 + BERT: 168M)
MAX_DEPTH = 12  # of nested containers
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
COUNTER_SUFFIXES = ("num_batches_tracked", "position_ids", "token_type_ids")


def check_archive(path: str | os.PathLike, source: str) -> None:
    """``path``, when it is a zip archive (``torch.save``'s format), holds only stored
    (uncompressed) records whose declared sizes fit in the file: their sum is at most the file's
    size, so ``torch.load`` reads at most the file's bytes. Reads the zip's central directory only.
    Other files (the legacy pickle format, which stores tensors raw) are left to ``torch.load``."""
    with open(path, "rb") as f:
        if f.read(2) != b"PK":
            return
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CheckpointError(
            f"{source} cannot be read (truncated or not a PyTorch file): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    total = 0
    for record in records:
        name = record.filename[:120]
        if record.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"{source}: record {name} is compressed (method {record.compress_type}); torch.save "
                "stores records uncompressed, and a compressed one can inflate to far more than the file; refused"
            )
        if record.file_size != record.compress_size:
            raise CheckpointError(
                f"{source}: record {name} declares {record.file_size:,} bytes but stores "
                f"{record.compress_size:,}; refused"
            )
        total += record.file_size
    if total > size:
        raise CheckpointError(
            f"{source}: its records declare {total:,} bytes in all, more than the file's "
            f"{size:,} (overlapping records); refused"
        )


def check_archives_in(folder: str | os.PathLike) -> None:
    """:func:`check_archive` on every PyTorch file (``*.bin``, ``*.pt``, ``*.pth``) directly in
    ``folder`` (a ``save_pretrained`` directory), before a library ``torch.load``s it."""
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in (".bin", ".pt", ".pth") and path.is_file():
            check_archive(path, str(path))


def _walk(obj: Any, path: str, depth: int, out: list[tuple[str, torch.Tensor]]) -> None:
    if depth > MAX_DEPTH:
        raise CheckpointError(f"{path}: containers nested more than {MAX_DEPTH} deep")
    if torch.is_tensor(obj):
        out.append((path, obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{path}.{k}" if path else str(k), depth + 1, out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{path}[{i}]", depth + 1, out)


def check_tensors(obj: Any, source: str) -> None:
    """Every tensor in ``obj`` (a loaded checkpoint) is a dense, strided CPU tensor of a real
    (non-complex, non-quantized) dtype with at most :data:`MAX_TENSOR_ELEMENTS` elements, no
    stride-0 (expanded) dimension, and its elements stored in its own storage: the elements of all
    tensors together fit in the bytes of the distinct storages the file holds. Values are not read."""
    tensors: list[tuple[str, torch.Tensor]] = []
    _walk(obj, "", 0, tensors)
    storages: dict[tuple[int, int], int] = {}
    needed = 0
    for name, t in tensors:
        where = f"{source}: tensor {name[:120]}"
        if t.layout != torch.strided or t.is_sparse:
            raise CheckpointError(
                f"{where} is {t.layout} (sparse); only dense tensors are accepted"
            )
        if t.device.type == "meta":
            raise CheckpointError(f"{where} is a meta tensor (no data)")
        if t.is_quantized or t.is_complex():
            raise CheckpointError(
                f"{where} has dtype {t.dtype}; only real floating point and integer weights are accepted"
            )
        if t.numel() > MAX_TENSOR_ELEMENTS:
            raise CheckpointError(
                f"{where} has {t.numel():,} elements, more than the limit of {MAX_TENSOR_ELEMENTS:,}"
            )
        if any(stride == 0 and size > 1 for size, stride in zip(t.shape, t.stride())):
            raise CheckpointError(
                f"{where} is an expanded view (stride 0): its {t.numel():,} elements are not stored"
            )
        storage = t.untyped_storage()
        storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        needed += t.numel() * t.element_size()
    stored = sum(storages.values())
    if needed > stored:
        raise CheckpointError(
            f"{source}: its tensors claim {needed:,} bytes of elements but the file stores {stored:,} "
            "(overlapping views of one storage); refused"
        )


def check_weights(state: Any, source: str, part: str) -> dict[str, torch.Tensor]:
    """``state`` is a dict of names -> floating-point tensors (integer only for counters such as
    BatchNorm's ``num_batches_tracked``); returns it."""
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{source}: '{part}' must be a dict of weights, found {type(state).__name__}"
        )
    for k, v in state.items():
        if not isinstance(k, str) or not torch.is_tensor(v):
            raise CheckpointError(f"{source}: '{part}' entry {str(k)[:80]!r} is not a named tensor")
        integer_ok = (
            k.endswith(COUNTER_SUFFIXES) and not v.is_floating_point() and v.dtype != torch.bool
        )
        if v.dtype not in WEIGHT_DTYPES and not integer_ok:
            raise CheckpointError(
                f"{source}: '{part}' weight {k[:120]} has dtype {v.dtype}; expected float32, "
                "float16, bfloat16 or float64"
            )
    return state
