"""Evaluation metrics: RefVOS's IoU protocol and A2D-Sentences mask mAP (:mod:`.segmentation`),
DAVIS J / F / J&F and its label maps (:mod:`.davis`), per-category analysis (:mod:`.categories`).

The metrics themselves are re-exported here."""

from .davis import DavisMetrics, contour_accuracy, region_similarity, seg2bmap
from .segmentation import (
    MTTR_EPS,
    PRECISION_THRESHOLDS,
    A2DMaskAP,
    RefSegMetrics,
    mask_score,
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
