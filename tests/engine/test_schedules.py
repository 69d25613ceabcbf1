"""The learning rate of every recipe at every epoch."""

from __future__ import annotations

import pytest
import torch

from refvos.engine.schedules import SCHEDULES, CosineSchedule, build_schedule
from refvos.errors import InputError

REFCOCO = (
    [0.01 - 4e-4 * e for e in range(18)]
    + [3e-3]  # phase 1: epochs 0-18 (18 clamped)
    + [6e-3 - 2.5e-4 * e for e in range(21)]  # phase 2: epochs 19-39 (39 = 1e-3)
    + [3e-5] * 10  # phase 3: epochs 40-49
)


def rates(schedule, epochs):
    return [schedule(e) for e in range(epochs)]


def test_registry_names():
    assert set(SCHEDULES) == {"refcoco", "davis", "a2d", "poly", "poly-epoch", "fixed", "constant"}


def test_refcoco_every_epoch():
    s = build_schedule("refcoco")
    assert s.epochs == 50
    assert rates(s, 50) == pytest.approx(REFCOCO, abs=1e-15)
    assert s(17) == pytest.approx(0.0032) and s(18) == 3e-3  # clamped, not 0.0028
    assert s(19) == 6e-3 and s(39) == 1e-3 and s(40) == 3e-5
    assert s(120) == 3e-5  # phase 3 continues for a longer run
    assert [s.phase_of(e)[0] for e in (0, 18, 19, 39, 40, 99)] == [0, 0, 1, 1, 2, 2]
    assert min(rates(s, 200)) == 3e-5


def test_davis_every_epoch():
    s = build_schedule("davis")
    assert s.epochs == 20
    assert rates(s, 20) == pytest.approx([1e-3 - 1e-5 * e for e in range(20)], abs=1e-15)
    assert s(19) == pytest.approx(8.1e-4) and s(30) == s(19)  # clamped past the recipe


def test_a2d_every_epoch():
    s = build_schedule("a2d")
    assert s.epochs == 15
    assert rates(s, 15) == pytest.approx([0.1 - 4e-3 * e for e in range(15)], abs=1e-15)
    assert s(14) == pytest.approx(0.044) and s(40) == s(14)


def test_poly_default_and_constant():
    s = build_schedule(None, lr=0.02, epochs=4)
    assert s.name == "poly"
    assert rates(s, 5) == pytest.approx([0.02 * (1 - e / 4) ** 0.9 for e in range(4)] + [0.0])
    c = build_schedule("constant", lr=0.5, epochs=3)
    assert rates(c, 3) == [0.5, 0.5, 0.5]
    assert build_schedule("poly").epochs == 30 and build_schedule("poly")(0) == 0.01


def test_poly_per_iteration_and_per_epoch():
    s = build_schedule(None, lr=0.02, epochs=4)
    assert s.name == "poly" and s.per_iteration
    # 5 steps per epoch: step 2 of epoch 1 is iteration 7 of 20
    assert s.at(1, 2, 5) == pytest.approx(0.02 * (1 - 7 / 20) ** 0.9)
    assert s.at(4, 0, 5) == 0.0
    e = build_schedule("poly-epoch", lr=0.02, epochs=4)
    assert e.at(1, 2, 5) == e(1) == pytest.approx(0.02 * (1 - 1 / 4) ** 0.9)
    for recipe in ("refcoco", "davis", "a2d", "constant"):  # constant within an epoch
        r = build_schedule(recipe)
        assert r.at(3, 4, 5) == r(3)


def test_fixed_is_the_originals_lr_times_lr_specific():
    assert build_schedule("fixed")(0) == pytest.approx(0.01 * 3e-5)  # the original's defaults: 3e-7
    s = build_schedule("fixed", lr=1.0, lr_factor=3e-5, epochs=10)
    assert [s.at(e, 2, 5) for e in range(10)] == [3e-5] * 10
    assert s.describe() == {"name": "fixed", "epochs": 10, "base_lr": 1.0, "factor": 3e-5}
    with pytest.raises(InputError, match="--lr_specific is the factor of the fixed schedule"):
        build_schedule("refcoco", lr_factor=0.5)


def test_base_lr_rescales_a_recipe_and_epochs_override():
    s = build_schedule("refcoco", lr=0.02, epochs=60)
    assert s.epochs == 60
    assert rates(s, 50) == pytest.approx([2 * x for x in REFCOCO], abs=1e-15)


@pytest.mark.parametrize(
    "kwargs", [{"name": "cosine"}, {"name": "poly", "lr": 0.0}, {"name": "a2d", "epochs": 0}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(InputError):
        build_schedule(**kwargs)


def test_cosine_warms_up_then_decays_to_zero_at_the_end_of_the_run():
    s = CosineSchedule(base_lr=3e-3, warmup=4)
    total = 24
    assert [s.rate(i, total) for i in range(4)] == pytest.approx(
        [3e-3 * k / 4 for k in (1, 2, 3, 4)]
    )
    # after the warm-up: torch's own cosine annealing (eta_min 0) over the remaining 20 steps
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-3)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 4)
    expected = []
    for _ in range(4, total + 1):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        annealing.step()
    assert [s.rate(i, total) for i in range(4, total + 1)] == pytest.approx(expected, abs=1e-12)
    assert (
        s.rate(total, total) == 0.0 and s.rate(total + 5, total) == 0.0
    )  # 0 at the end, and after
    assert s.rate(10, total) < s.rate(10, 2 * total)  # a shorter run decays sooner
    with pytest.raises(InputError):
        s.rate(-1, total)
