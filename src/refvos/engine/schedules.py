"""Learning-rate schedules: pure functions of the training position.

``schedule(epoch)`` is the rate at the start of an epoch (0-based) and
``schedule.at(epoch, step, steps_per_epoch)`` the rate of optimizer step ``step`` of that epoch;
the trainer sets it before every step. The recipes are constant within an epoch; ``poly``
decays every iteration. The position of a run is (epoch, step), which a checkpoint stores, so
resuming gives the same rates.

RefVOS's recipes (the paper: Bellver et al. 2020, arXiv 2010.00263), each one
run, piecewise linear and clamped:

- ``refcoco`` (RefCOCO / RefCOCO+ / RefCOCOg), three phases without manual restarts:

  ========  ===========  ===========================================
  epochs    phase        learning rate
  ========  ===========  ===========================================
  0 - 18    1 (19 ep.)   max(3e-3, 0.01 - 4e-4 * e)      (18: 3e-3)
  19 - 39   2 (21 ep.)   max(1e-3, 6e-3 - 2.5e-4 * (e - 19)) (39: 1e-3)
  40 -      3            3e-5 (fixed, absolute; not a multiple of --lr)
  ========  ===========  ===========================================

  This is an **interpretation**. The paper gives the three rates; the authors' code
  (miriambellver/refvos ``train.py``) can only run them as separate manual invocations: its
  linear schedule (``--linear_lr``: ``lr - lr_specific_decrease * epoch``, set after each
  iteration) is never clamped and restarts its epoch count at 0 in every invocation, and its
  fixed schedule (``--fixed_lr``) is a ``LambdaLR`` returning ``--lr_specific``, i.e. the rate
  is ``--lr * --lr_specific`` (3e-7 with its defaults 0.01 and 3e-5), not 3e-5. Phase lengths
  here are those at which each linear phase reaches its floor (0.01 - 4e-4 * 17.5 = 3e-3, so
  epoch 18 is the first at the floor; phase 2 likewise); the recipe runs 50 epochs by default
  (10 at 3e-5) and a longer ``--epochs`` extends phase 3. For the original's literal fixed
  schedule use ``fixed`` below.
- ``davis`` (DAVIS-2017 fine-tuning): 1e-3 - 1e-5 * e, 20 epochs (19: 8.1e-4).
- ``a2d`` (A2D-Sentences): 0.1 - 4e-3 * e, 15 epochs (14: 0.044).

Plain schedules with a base rate (``--lr``):

- ``poly`` (the default, as the original's default): ``lr * (1 - i / (epochs * steps_per_epoch))
  ** 0.9`` at optimizer step ``i`` (counted from 0 over the run), the original's ``LambdaLR``
  stepped after every iteration (``train.py``).
- ``poly-epoch``: the same decay with ``i / steps_per_epoch`` rounded down to the epoch (the
  rate changes once per epoch; refvos's default before it followed the original).
- ``fixed``: the original's ``--fixed_lr``: ``lr * lr_factor`` at every step (``--lr_specific``,
  default 3e-5 as the original's).
- ``constant``: ``lr`` at every step.

:class:`CosineSchedule` (linear warm-up, then half a cosine to 0 at the end of the run, per
iteration) is the head trainer's (:mod:`refvos.demo.head_trainer`, ``make demo``); it is not a
``--schedule`` of ``refvos train``.

A base rate given with a recipe rescales the whole recipe (``recipe(e) * lr / recipe(0)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError


def _clean(x: float) -> float:
    """Round away float noise (0.01 - 4e-4 * 17 -> 0.0032) so logged rates read cleanly."""
    return round(x, 12)


@dataclass(frozen=True)
class LinearPhase:
    """``max(floor, start - step * e)`` for ``epochs`` epochs (``None``: until the end)."""

    start: float
    step: float = 0.0
    floor: float = 0.0
    epochs: int | None = None

    def lr(self, epoch: int) -> float:
        return _clean(max(self.floor, self.start - self.step * epoch))


@dataclass(frozen=True)
class PiecewiseLinearSchedule:
    """Phases run one after the other; the last phase continues to any epoch.

    ``schedule(epoch) -> lr``; ``phase_of(epoch) -> (phase index, epoch within the phase)``.
    """

    name: str
    phases: tuple[LinearPhase, ...]
    epochs: int
    scale: float = 1.0

    def phase_of(self, epoch: int) -> tuple[int, int]:
        if epoch < 0:
            raise InputError(f"schedule {self.name}: epoch must be >= 0, got {epoch}")
        e = epoch
        for i, phase in enumerate(self.phases):
            if phase.epochs is None or e < phase.epochs:
                return i, e
            e -= phase.epochs
        return len(self.phases) - 1, e + self.phases[-1].epochs  # last phase, clamped

    def __call__(self, epoch: int) -> float:
        i, e = self.phase_of(epoch)
        return _clean(self.phases[i].lr(e) * self.scale)

    def at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The rate of a step: the epoch's (the recipes are constant within an epoch)."""
        return self(epoch)

    def with_base_lr(self, lr: float) -> PiecewiseLinearSchedule:
        """The recipe rescaled so that epoch 0 has rate ``lr``."""
        return replace(self, scale=lr / self.phases[0].start)

    def describe(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "base_lr": self(0)}


@dataclass(frozen=True)
class PolySchedule:
    """``base_lr * (1 - progress) ** power`` with progress = iterations done / all iterations
    (``per_iteration``, the original's) or epochs done / ``epochs``; 0 at and after the end."""

    base_lr: float
    epochs: int
    power: float = 0.9
    per_iteration: bool = True
    name: str = "poly"

    def _rate(self, done: int, total: int) -> float:
        if done < 0:
            raise InputError(f"schedule {self.name}: position must be >= 0, got {done}")
        return _clean(self.base_lr * max(0.0, 1.0 - done / total) ** self.power)

    def __call__(self, epoch: int) -> float:
        return self._rate(epoch, self.epochs)

    def at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        if not self.per_iteration:
            return self(epoch)
        return self._rate(epoch * steps_per_epoch + step, self.epochs * steps_per_epoch)

    def describe(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "base_lr": self.base_lr}


@dataclass(frozen=True)
class ConstantSchedule:
    """``base_lr * factor`` at every step (``fixed``: the original's ``--fixed_lr``, whose
    ``LambdaLR`` returns ``--lr_specific``, so the rate is ``--lr`` times that factor)."""

    base_lr: float
    epochs: int
    factor: float = 1.0
    name: str = "constant"

    def __call__(self, epoch: int) -> float:
        return _clean(self.base_lr * self.factor)

    def at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        return self(epoch)

    def describe(self) -> dict:
        out = {"name": self.name, "epochs": self.epochs, "base_lr": self.base_lr}
        return {**out, "factor": self.factor} if self.name == "fixed" else out


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warm-up then cosine decay to 0, per iteration (SGDR's cosine, Loshchilov & Hutter
    2017, without restarts): :meth:`rate` of iteration ``i`` (from 0) in a run of ``total``.

    - ``i < warmup``: ``base_lr * (i + 1) / warmup``;
    - else ``base_lr * (1 + cos(pi * p)) / 2`` with ``p = min(1, (i - warmup) / max(1, total - warmup))``,

    so the rate reaches 0 at ``i = total`` (the position after the last step) and stays there.
    The run's length is an argument, not a field: the head trainer knows it only once it has
    planned its run to a time budget. Rates are not rounded (:func:`_clean`): they are the exact
    products a ``LambdaLR`` of the same factor gives.
    """

    base_lr: float
    warmup: int = 0

    def rate(self, i: int, total: int) -> float:
        if i < 0:
            raise InputError(f"cosine schedule: position must be >= 0, got {i}")
        if i < self.warmup:
            return self.base_lr * ((i + 1) / self.warmup)
        progress = (i - self.warmup) / max(1, total - self.warmup)
        return self.base_lr * (0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


Schedule = PiecewiseLinearSchedule | PolySchedule | ConstantSchedule

REFCOCO = PiecewiseLinearSchedule(
    "refcoco",
    (
        LinearPhase(0.01, 4e-4, 3e-3, epochs=19),
        LinearPhase(6e-3, 2.5e-4, 1e-3, epochs=21),
        LinearPhase(3e-5),
    ),
    epochs=50,
)
DAVIS = PiecewiseLinearSchedule("davis", (LinearPhase(1e-3, 1e-5, 1e-3 - 1e-5 * 19),), epochs=20)
A2D = PiecewiseLinearSchedule("a2d", (LinearPhase(0.1, 4e-3, 0.1 - 4e-3 * 14),), epochs=15)

DEFAULT_SCHEDULE = "poly"
DEFAULT_LR = 0.01
DEFAULT_EPOCHS = 30
DEFAULT_FIXED_FACTOR = 3e-5  # the original's --lr_specific default


def _recipe(recipe: PiecewiseLinearSchedule) -> Callable[..., Schedule]:
    def make(lr: float | None = None, epochs: int | None = None) -> Schedule:
        s = recipe if lr is None else recipe.with_base_lr(lr)
        return s if epochs is None else replace(s, epochs=epochs)

    make.__doc__ = f"The {recipe.name} recipe ({recipe.epochs} epochs unless told)."
    return make


def _plain(cls, **options: Any) -> Callable[..., Schedule]:
    def make(lr: float | None = None, epochs: int | None = None) -> Schedule:
        return cls(
            DEFAULT_LR if lr is None else lr,
            DEFAULT_EPOCHS if epochs is None else epochs,
            **options,
        )

    make.__doc__ = cls.__doc__
    return make


# name -> factory(lr=None, epochs=None) -> schedule (callable epoch -> lr, .at(epoch, step,
# steps_per_epoch) -> lr, .epochs)
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "refcoco": _recipe(REFCOCO),
    "davis": _recipe(DAVIS),
    "a2d": _recipe(A2D),
    "poly": _plain(PolySchedule),
    "poly-epoch": _plain(PolySchedule, per_iteration=False, name="poly-epoch"),
    "fixed": _plain(ConstantSchedule, factor=DEFAULT_FIXED_FACTOR, name="fixed"),
    "constant": _plain(ConstantSchedule),
}


def build_schedule(
    name: str | None,
    lr: float | None = None,
    epochs: int | None = None,
    lr_factor: float | None = None,
) -> Schedule:
    """A schedule from :data:`SCHEDULES` (``None``: :data:`DEFAULT_SCHEDULE`).

    ``lr``: base rate (rescales a recipe); ``epochs``: run length (a recipe's own by default);
    ``lr_factor``: ``fixed`` only, the factor applied to ``lr`` (the original's ``--lr_specific``).
    """
    name = name or DEFAULT_SCHEDULE
    if name not in SCHEDULES:
        raise InputError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    if lr is not None and not lr > 0:
        raise InputError(f"--lr must be positive, got {lr}")
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    if lr_factor is not None and name != "fixed":
        raise InputError(
            f"--lr_specific is the factor of the fixed schedule (--fixed_lr), not of {name}"
        )
    if lr_factor is not None and not lr_factor > 0:
        raise InputError(f"--lr_specific must be positive, got {lr_factor}")
    schedule = SCHEDULES[name](lr=lr, epochs=epochs)
    return schedule if lr_factor is None else replace(schedule, factor=lr_factor)
