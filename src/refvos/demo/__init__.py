"""demo: see :mod:`.pipeline` (its names are re-exported here)."""

from .pipeline import (
    PRESETS,
    TEST_SPLITS,
    Recipe,
    device_info,
    run_demo,
    segment_video,
    set_threads,
    write_overlays,
)

__all__ = [
    "PRESETS",
    "Recipe",
    "TEST_SPLITS",
    "device_info",
    "run_demo",
    "segment_video",
    "set_threads",
    "write_overlays",
]
