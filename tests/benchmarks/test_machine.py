"""benchmarks/machine.py: a section's gc.collect() scans only what the section made; alternated
rounds stop timing a call that cannot be the fastest."""

import gc

from benchmarks import machine


def test_own_heap_keeps_earlier_objects_out_of_the_collectors_reach():
    earlier = [[i] for i in range(10_000)]  # tracked containers made before the section
    assert gc.get_freeze_count() == 0
    with machine.own_heap():
        frozen = gc.get_freeze_count()
        assert frozen >= len(earlier)
        made = [[i] for i in range(100)]
        gc.collect()  # the section's own collection: the earlier objects stay frozen
        assert gc.get_freeze_count() == frozen
        assert all(gc.is_tracked(m) for m in made)
    assert gc.get_freeze_count() == 0  # back to normal after the section
    del earlier


def test_alternated_rounds_alternate_and_stop_timing_the_clearly_slower(monkeypatch):
    seconds = {"fast": 1.0, "close": 1.5, "emulated": 9.0}  # fixed durations: no clock involved
    order = []
    monkeypatch.setattr(machine, "time_calls", lambda fn, repeats, warmup=0, device=None: [fn()])
    calls = {name: (lambda n=name: order.append(n) or seconds[n]) for name in seconds}
    prepared = []
    times = machine.alternated_rounds(calls, 3, before=prepared.append)
    assert times == {"fast": [1.0] * 3, "close": [1.5] * 3, "emulated": [9.0]}
    assert order == ["fast", "close", "emulated", "fast", "close", "fast", "close"]
    assert prepared == order  # each timed call prepared just before it
    every = machine.alternated_rounds(calls, 3, drop_slower=False)
    assert {name: len(t) for name, t in every.items()} == {"fast": 3, "close": 3, "emulated": 3}
