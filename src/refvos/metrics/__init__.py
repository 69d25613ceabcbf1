"""metrics: see :mod:`.segmentation` (its names are re-exported here)."""

from .segmentation import (
    MTTR_EPS,
    PRECISION_THRESHOLDS,
    A2DMaskAP,
    DavisMetrics,
    RefSegMetrics,
    contour_accuracy,
    mask_score,
    region_similarity,
    seg2bmap,
)

__all__ = [
    "A2DMaskAP",
    "DavisMetrics",
    "MTTR_EPS",
    "PRECISION_THRESHOLDS",
    "RefSegMetrics",
    "contour_accuracy",
    "mask_score",
    "region_similarity",
    "seg2bmap",
]
