"""benchmarks/machine.py: a section's gc.collect() scans only what the section made."""

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
