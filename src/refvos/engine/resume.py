"""Exact resume of a training run: the sample order, each sample's randomness, the generators,
and the check that a checkpoint can resume a run (:func:`check_training_state`).

The sample order of an epoch depends only on (seed, epoch)
(:class:`ResumableSampler`), every sample's own randomness (sentence choice, crop) only on
(seed, epoch, position) (:class:`SeededSamples`), and resuming skips the consumed batches and
restores the generators, so a run stopped after any step and resumed ends with bitwise the same
parameters as one never stopped (CPU, same seed, same number of processes).
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt_io
from ..errors import CheckpointError, InputError
from . import distributed as du


class ResumableSampler(torch.utils.data.Sampler):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``, sharded over processes
    as ``DistributedSampler`` (padded to a multiple of the world size, rank ``r`` takes every
    ``world``-th index from ``r``), able to start part-way into an epoch.

    Yields ``(index, sample_seed)`` pairs for :class:`SeededSamples`; ``set_epoch(epoch, skip)``
    selects the epoch and skips this process's first ``skip`` samples.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.n = num_samples
        self.seed = seed
        self.num_replicas = du.get_world_size() if num_replicas is None else num_replicas
        self.rank = du.get_rank() if rank is None else rank
        self.per_rank = math.ceil(num_samples / self.num_replicas)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """All processes' ``(indices, sample_seeds)`` of an epoch, each ``(per_rank * world,)``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        total = self.per_rank * self.num_replicas
        order = rng.permutation(self.n)
        order = np.concatenate([order, order[: total - self.n]]) if total > self.n else order
        seeds = rng.integers(0, 2**62, size=total, dtype=np.int64)
        return order, seeds

    def __iter__(self):
        order, seeds = self.epoch_order(self.epoch)
        mine = slice(self.rank, len(order), self.num_replicas)
        yield from list(zip(order[mine].tolist(), seeds[mine].tolist()))[self.skip :]

    def __len__(self) -> int:
        return max(0, self.per_rank - self.skip)


class SeededSamples(torch.utils.data.Dataset):
    """Wraps a Dataset: item ``(index, seed)`` is ``dataset[index]`` computed with the python,
    numpy and torch generators seeded by ``seed`` (and restored afterwards), so a sample's random
    sentence and crop do not depend on the worker, the process or what was loaded before."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed % 2**32)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


# ----------------------------------------------------------------------------- generator states


def rng_state() -> dict[str, Any]:
    """This process's generator states as tensors and lists (``weights_only``-loadable)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, torch.tensor(mt, dtype=torch.int64), gauss],
        "numpy": [
            name,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in mt.tolist()), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _check_rng_states(rngs: Any, source: str) -> None:
    """``rngs`` is a non-empty list of :func:`rng_state` dicts that :func:`set_rng_state` takes
    (each is tried; this process's generators are left as they were)."""
    if not isinstance(rngs, list) or not rngs or not all(isinstance(r, dict) for r in rngs):
        raise CheckpointError(
            f"{source}: 'rng' must be a non-empty list of generator-state dicts, "
            f"found {type(rngs).__name__}"
        )
    mine = rng_state()
    try:
        for r in rngs:
            set_rng_state(r)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
        raise CheckpointError(
            f"{source}: 'rng' holds a generator state that cannot be restored "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
        ) from e
    finally:
        set_rng_state(mine)


def check_training_state(ckpt: dict[str, Any], source: str, complete: bool = True) -> None:
    """``ckpt`` (a checkpoint as read) can resume a training: a refvos training checkpoint whose
    entries have the types :meth:`Trainer.state` writes. One-line :class:`CheckpointError`
    naming ``source`` otherwise; values are not trusted further than their types.
    ``complete=False``: only the entries present are checked (a weights-only file passes)."""
    if ckpt_io.is_released_format(ckpt):
        raise CheckpointError(
            f"{source} is in the released format (weights only); use it with "
            "--pretrained_refvos --ck_pretrained_refvos to start a new run"
        )
    missing = [
        k for k in ("optimizer", "epoch", "step", "iteration", "rng", "args") if k not in ckpt
    ]
    if missing and complete:
        raise CheckpointError(
            f"{source} cannot resume training: it has no {missing} (a weights-only file?)"
        )

    def wrong(key: str, expected: str) -> CheckpointError:
        return CheckpointError(
            f"{source}: '{key}' must be {expected}, found {type(ckpt[key]).__name__} "
            f"{str(ckpt[key])[:40]!r}"
        )

    for key in ("args", "optimizer"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise wrong(key, "a dict")
    for key in ("dataset", "vocab_file", "a2d_query", "truncation"):
        value = ckpt.get("args", {}).get(key)
        if value is not None and not isinstance(value, str):
            raise CheckpointError(
                f"{source}: 'args' entry {key!r} must be a string, found {type(value).__name__}"
            )
    for key in ("epoch", "step", "iteration"):
        value = ckpt.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise wrong(key, "a non-negative integer")
    if ckpt.get("history") is not None and not (
        isinstance(ckpt["history"], list) and all(isinstance(h, dict) for h in ckpt["history"])
    ):
        raise wrong("history", "a list of per-epoch dicts")
    best = ckpt.get("best")
    if best is not None and not (
        isinstance(best, dict)
        and isinstance(best.get("value"), (int, float))
        and not isinstance(best.get("value"), bool)
    ):
        raise wrong("best", "None or a dict with a numeric 'value'")
    if "scaler" in ckpt and not isinstance(ckpt["scaler"], dict):
        raise wrong("scaler", "a dict")
    if "rng" in ckpt:
        _check_rng_states(ckpt["rng"], source)


# ----------------------------------------------------------------------------- a trainer's state

# Settings that must not change when a run is resumed (they define the sample order / groups).
RESUME_INVARIANTS = (
    "seed",
    "batch_size",
    "accumulate",
    "world_size",
    "text_encoder_training",
    "optimizer",
)
# what a checkpoint written before a setting existed was trained with
INVARIANT_DEFAULTS = {"optimizer": "sgd"}


def training_state(trainer: Any) -> dict[str, Any]:
    """Everything but the weights of a :class:`~refvos.engine.trainer.Trainer`: the ``extra``
    entries of a training checkpoint (a collective: every rank takes part)."""
    rngs = du.all_gather_object(rng_state())
    state = {
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": {**trainer.schedule.describe(), "epoch": trainer.epoch},
        "epoch": trainer.epoch,
        "step": trainer.step,
        "iteration": trainer.iteration,
        "sampler": {
            "seed": trainer.config.seed,
            "epoch": trainer.epoch,
            "consumed_samples": trainer.step
            * trainer.config.accumulate
            * trainer.config.batch_size,
        },
        "rng": rngs,
        "best": trainer.best,
        "history": trainer.history,
        "args": trainer.args,
    }
    if trainer.scaler is not None:
        state["scaler"] = trainer.scaler.state_dict()
    return state


def restore_training_state(trainer: Any, ckpt: dict[str, Any], source: str = "checkpoint") -> None:
    """Restore a trainer's optimizer, position, generators, best and history from a training
    checkpoint ``ckpt`` read from ``source`` (the weights are loaded by ``Trainer.resume``); the
    settings of :data:`RESUME_INVARIANTS` must be the checkpoint's."""
    check_training_state(ckpt, source)
    old = ckpt["args"]
    then = {k: old.get(k, INVARIANT_DEFAULTS.get(k)) for k in RESUME_INVARIANTS}
    changed = {
        k: (then[k], trainer.args[k]) for k in RESUME_INVARIANTS if then[k] != trainer.args[k]
    }
    if changed:
        raise InputError(
            f"{source} was trained with different settings; resuming needs the same "
            + ", ".join(f"{k} (checkpoint {a!r}, now {b!r})" for k, (a, b) in changed.items())
        )
    try:
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(
            f"{source}: optimizer state does not fit this model: "
            f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"
        ) from e
    if trainer.scaler is not None and "scaler" in ckpt:
        try:
            trainer.scaler.load_state_dict(ckpt["scaler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(
                f"{source}: 'scaler' state cannot be restored: {type(e).__name__}"
            ) from e
    trainer.epoch, trainer.step, trainer.iteration = (
        int(ckpt["epoch"]),
        int(ckpt["step"]),
        int(ckpt["iteration"]),
    )
    trainer.best, trainer.history = ckpt.get("best"), list(ckpt.get("history") or [])
    rngs = ckpt["rng"]
    set_rng_state(rngs[trainer.rank] if len(rngs) == trainer.world_size else rngs[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
