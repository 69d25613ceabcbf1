"""Multi-process helpers with the torchvision references' names (``references/segmentation/utils.py``).

Launch with torchrun, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``::

    torchrun --nproc_per_node 4 -m refvos train ...            # one node, 4 GPUs
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST ...    # several nodes

The backend is NCCL on CUDA and gloo on CPU. Without those variables everything runs in one
process and every helper degrades to the single-process answer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InputError


def is_dist_avail_and_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    return get_rank() == 0


def save_on_master(save, *args: Any, **kwargs: Any) -> None:
    """Call ``save(*args, **kwargs)`` on rank 0 only (e.g. ``save_on_master(save_checkpoint, ...)``)."""
    if is_main_process():
        save(*args, **kwargs)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed_mode(device: str | torch.device | None = None) -> torch.device:
    """Join the process group that torchrun describes; return this process's device.

    ``device``: ``cuda`` / ``cpu`` / ``None`` (CUDA when available). On CUDA each process takes
    GPU ``LOCAL_RANK``. A single process (no torchrun variables) returns the device unchanged.
    """
    from ..runtime import resolve_device

    device = resolve_device(device)
    if not launched_by_torchrun():
        return device
    if is_dist_avail_and_initialized():
        return _local_device(device)
    device = _local_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    dist.barrier()
    return device


@contextlib.contextmanager
def distributed_mode(device: str | torch.device | None = None) -> Iterator[torch.device]:
    """:func:`init_distributed_mode` for the duration of a command (``refvos train``,
    ``refvos test``); yields this process's device and leaves the process group it joined
    (one joined earlier, e.g. by a test harness, is left in place)."""
    joined = launched_by_torchrun() and not is_dist_avail_and_initialized()
    device = init_distributed_mode(device)
    try:
        yield device
    finally:
        if joined:
            destroy_distributed_mode()


def _local_device(device: torch.device) -> torch.device:
    if device.type != "cuda":
        return device
    local = get_local_rank()
    if local >= torch.cuda.device_count():
        raise InputError(
            f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) are visible; "
            "lower torchrun's --nproc_per_node"
        )
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def destroy_distributed_mode() -> None:
    if is_dist_avail_and_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_dist_avail_and_initialized():
        dist.barrier()


def reduce_tensor(tensor: torch.Tensor, average: bool = True) -> torch.Tensor:
    """All-reduce a copy of ``tensor`` across processes (sum, or mean with ``average``)."""
    if not is_dist_avail_and_initialized():
        return tensor.clone()
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    if average:
        out /= get_world_size()
    return out


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` in one process)."""
    if not is_dist_avail_and_initialized():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out
