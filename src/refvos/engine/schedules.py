"""Per-epoch learning-rate recipes: pure functions of the epoch index (0-based).

The rate is constant within an epoch and set on every parameter group at the epoch's start, so
the schedule position of a run is just its epoch (what a checkpoint stores to resume).

Recipes of RefVOS (REFVOS_REFERENCE.md section 2), each one run, piecewise linear and clamped:

- ``refcoco`` (RefCOCO / RefCOCO+ / RefCOCOg), three phases without manual restarts:

  ========  ===========  ===========================================
  epochs    phase        learning rate
  ========  ===========  ===========================================
  0 - 18    1 (19 ep.)   max(3e-3, 0.01 - 4e-4 * e)      (18: 3e-3)
  19 - 39   2 (21 ep.)   max(1e-3, 6e-3 - 2.5e-4 * (e - 19)) (39: 1e-3)
  40 -      3            3e-5 (fixed, absolute; not a multiple of --lr)
  ========  ===========  ===========================================

  Phase 1 lasts until its rate reaches its floor (0.01 - 4e-4 * 17.5 = 3e-3, so epoch 18 is
  the first at the floor), phase 2 likewise (epoch 20 of the phase is exactly 1e-3). The recipe
  runs 50 epochs by default (10 at 3e-5); a longer ``--epochs`` extends phase 3.
- ``davis`` (DAVIS-2017 fine-tuning): 1e-3 - 1e-5 * e, 20 epochs (19: 8.1e-4).
- ``a2d`` (A2D-Sentences): 0.1 - 4e-3 * e, 15 epochs (14: 0.044).

Plain schedules with a base rate (``--lr``), used when no recipe is named:

- ``poly`` (the default): ``lr * (1 - e / epochs) ** 0.9``, the torchvision segmentation
  references' polynomial decay, applied per epoch instead of per iteration.
- ``constant``: ``lr`` at every epoch.

A base rate given with a recipe rescales the whole recipe (``recipe(e) * lr / recipe(0)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

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

    def with_base_lr(self, lr: float) -> PiecewiseLinearSchedule:
        """The recipe rescaled so that epoch 0 has rate ``lr``."""
        return replace(self, scale=lr / self.phases[0].start)

    def describe(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "base_lr": self(0)}


@dataclass(frozen=True)
class PolySchedule:
    """``base_lr * (1 - epoch / epochs) ** power`` (0 at and after ``epochs``)."""

    base_lr: float
    epochs: int
    power: float = 0.9
    name: str = "poly"

    def __call__(self, epoch: int) -> float:
        if epoch < 0:
            raise InputError(f"schedule poly: epoch must be >= 0, got {epoch}")
        return _clean(self.base_lr * max(0.0, 1.0 - epoch / self.epochs) ** self.power)

    def describe(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "base_lr": self.base_lr}


@dataclass(frozen=True)
class ConstantSchedule:
    base_lr: float
    epochs: int
    name: str = "constant"

    def __call__(self, epoch: int) -> float:
        return _clean(self.base_lr)

    def describe(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "base_lr": self.base_lr}


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


def _recipe(recipe: PiecewiseLinearSchedule) -> Callable[..., Schedule]:
    def make(lr: float | None = None, epochs: int | None = None) -> Schedule:
        s = recipe if lr is None else recipe.with_base_lr(lr)
        return s if epochs is None else replace(s, epochs=epochs)

    make.__doc__ = f"The {recipe.name} recipe ({recipe.epochs} epochs unless told)."
    return make


def _plain(cls) -> Callable[..., Schedule]:
    def make(lr: float | None = None, epochs: int | None = None) -> Schedule:
        return cls(DEFAULT_LR if lr is None else lr, DEFAULT_EPOCHS if epochs is None else epochs)

    make.__doc__ = cls.__doc__
    return make


# name -> factory(lr=None, epochs=None) -> schedule (callable epoch -> lr, with .epochs)
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "refcoco": _recipe(REFCOCO),
    "davis": _recipe(DAVIS),
    "a2d": _recipe(A2D),
    "poly": _plain(PolySchedule),
    "constant": _plain(ConstantSchedule),
}


def build_schedule(name: str | None, lr: float | None = None, epochs: int | None = None) -> Schedule:
    """A schedule from :data:`SCHEDULES` (``None``: :data:`DEFAULT_SCHEDULE`).

    ``lr``: base rate (rescales a recipe); ``epochs``: run length (a recipe's own by default).
    """
    name = name or DEFAULT_SCHEDULE
    if name not in SCHEDULES:
        raise InputError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    if lr is not None and not lr > 0:
        raise InputError(f"--lr must be positive, got {lr}")
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    return SCHEDULES[name](lr=lr, epochs=epochs)
