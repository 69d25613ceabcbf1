"""Segmentation metrics: RefVOS's IoU protocol and A2D-Sentences mask mAP.

Every function and accumulator takes masks as numpy arrays or torch tensors of shape ``(H, W)``
(one sample) or ``(B, H, W)`` (a batch), boolean or integer 0/1. Values are fractions in 0..1,
and the CLI prints them as fractions too (``refvos test``'s table, ``metrics.json``).

- :class:`RefSegMetrics` -- RefVOS ``test.py`` (all data sets): overall IoU = sum(I) / sum(U),
  mean IoU = mean of per-sample IoU (0 where U = 0), precision@t = fraction of samples with
  IoU >= t. ``protocol="mttr"`` gives MTTR's variant for A2D: IoU = (I + 1e-6) / (U + 1e-6) and
  precision@t counts IoU > t.
- :class:`A2DMaskAP` -- COCO mask AP over IoU 0.50:0.05:0.95 (pycocotools, ``useCats = 0``),
  one COCO image per (annotated frame, expression), as MTTR and ReferFormer report it.

DAVIS's J / F are in :mod:`refvos.metrics.davis`.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Hashable
from typing import Any

import numpy as np

from ..deps import require
from ..errors import InputError
from .masks import as_mask, check_shapes, to_numpy

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MTTR_EPS = 1e-6


# --------------------------------------------------------------------------- RefVOS IoU protocol


class RefSegMetrics:
    """Streaming overall / mean IoU and precision@0.5:0.9 over referring-segmentation samples.

    ``protocol="refvos"`` (default) is RefVOS ``test.py``: IoU = I/U, IoU = 0 where U = 0,
    precision@t counts IoU >= t. ``protocol="mttr"`` is MTTR's A2D-Sentences code:
    IoU = (I + 1e-6)/(U + 1e-6) (so 1 where both masks are empty), precision@t counts IoU > t.

    The state is one float64 vector whose entries add up across processes: ``state()`` gives it,
    ``merge()`` adds another accumulator or vector (e.g. after ``torch.distributed.all_reduce``).
    """

    def __init__(self, protocol: str = "refvos") -> None:
        if protocol not in ("refvos", "mttr"):
            raise InputError(f"protocol must be 'refvos' or 'mttr', got {protocol!r}")
        self.protocol = protocol
        self.thresholds = np.array(PRECISION_THRESHOLDS)
        # [num_samples, cum_intersection, cum_union, sum_iou, correct@t for each t]
        self._state = np.zeros(4 + len(self.thresholds), dtype=np.float64)

    def sample_iou(self, intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
        """Per-sample IoU ``(B,)`` from intersections and unions ``(B,)`` under this protocol."""
        intersection = np.asarray(intersection, dtype=np.float64)
        union = np.asarray(union, dtype=np.float64)
        if self.protocol == "mttr":
            return (intersection + MTTR_EPS) / (union + MTTR_EPS)
        return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)

    def update(self, pred: Any, gt: Any, ignore: Any = None) -> np.ndarray:
        """Add samples; returns their IoU, shape ``(B,)`` (``(1,)`` for one ``(H, W)`` sample).

        pred, gt: ``(H, W)`` or ``(B, H, W)``, boolean or 0/1. ignore: optional boolean mask of
        the same shape (e.g. ``gt == 255``); those pixels count in neither I nor U.
        """
        ignore_np = None if ignore is None else to_numpy(ignore).astype(bool)
        if ignore_np is not None:
            gt = np.where(ignore_np, 0, to_numpy(gt))
        pred_np, gt_np = as_mask(pred, "pred"), as_mask(gt, "gt")
        check_shapes(pred=pred_np, gt=gt_np, ignore=ignore_np)
        if pred_np.ndim == 2:
            pred_np, gt_np = pred_np[None], gt_np[None]
            ignore_np = None if ignore_np is None else ignore_np[None]
        if pred_np.ndim != 3:
            raise InputError(f"masks must be (H, W) or (B, H, W), got shape {pred_np.shape}")
        union_px = pred_np | gt_np
        if ignore_np is not None:
            union_px &= ~ignore_np
        inter = (pred_np & gt_np).sum(axis=(1, 2))  # gt is already 0 on ignored pixels
        union = union_px.sum(axis=(1, 2))
        self.update_from_counts(inter, union)
        return self.sample_iou(inter, union)

    def update_from_counts(self, intersection: Any, union: Any) -> None:
        """Add samples given their intersection and union pixel counts, each ``(B,)``."""
        inter = np.atleast_1d(to_numpy(intersection)).astype(np.float64)
        union = np.atleast_1d(to_numpy(union)).astype(np.float64)
        iou = self.sample_iou(inter, union)
        hits = (
            iou[:, None] > self.thresholds
            if self.protocol == "mttr"
            else iou[:, None] >= self.thresholds
        )
        self._state[0] += len(iou)
        self._state[1] += inter.sum()
        self._state[2] += union.sum()
        self._state[3] += iou.sum()
        self._state[4:] += hits.sum(axis=0)

    def state(self) -> np.ndarray:
        """The sum-able state vector (float64, length 9); a copy."""
        return self._state.copy()

    def merge(self, other: RefSegMetrics | Any) -> RefSegMetrics:
        """Add another accumulator's (same protocol) state, or a state vector; returns self."""
        if isinstance(other, RefSegMetrics):
            if other.protocol != self.protocol:
                raise InputError(f"cannot merge {other.protocol!r} into {self.protocol!r} metrics")
            other = other._state
        vec = to_numpy(other).astype(np.float64).ravel()
        if vec.shape != self._state.shape:
            raise InputError(f"state vector must have length {len(self._state)}, got {vec.shape}")
        self._state += vec
        return self

    def compute(self) -> dict[str, float]:
        """``overall_iou``, ``mean_iou``, ``precision@0.5`` .. ``precision@0.9`` (0 with no
        samples), ``num_samples``, ``cum_intersection``, ``cum_union``."""
        n, cum_i, cum_u, sum_iou = self._state[:4]
        out = {
            "overall_iou": float(cum_i / cum_u) if cum_u > 0 else 0.0,
            "mean_iou": float(sum_iou / n) if n > 0 else 0.0,
        }
        for t, c in zip(self.thresholds, self._state[4:]):
            out[f"precision@{t:.1f}"] = float(c / n) if n > 0 else 0.0
        out.update(num_samples=int(n), cum_intersection=float(cum_i), cum_union=float(cum_u))
        return out


# ------------------------------------------------------------------------- A2D-Sentences mask AP


def mask_score(fg_prob: Any, pred: Any) -> float:
    """Confidence of a predicted mask: the mean foreground probability inside it (0 if empty).

    fg_prob: ``(H, W)`` float in 0..1 (softmax of the logits, class 1); pred: ``(H, W)`` mask.
    """
    prob, mask = to_numpy(fg_prob).astype(np.float64), as_mask(pred, "pred")
    check_shapes(fg_prob=prob, pred=mask)
    return float(prob[mask].mean()) if mask.any() else 0.0


class A2DMaskAP:
    """COCO mask AP (pycocotools COCOeval, iouType ``segm``, ``useCats = 0``) for A2D-Sentences.

    Each sample -- one annotated frame with one expression -- becomes one COCO image holding the
    referred object's mask as its only ground-truth annotation, and the model's mask as its only
    detection, scored by :func:`mask_score` (mean foreground probability inside the mask).
    An empty ground truth gives an image without annotations (a detection there is a false
    positive); an empty prediction gives no detection (the object is missed).

    Masks are stored run-length encoded. ``state()`` is a picklable list (gather it with
    ``torch.distributed.all_gather_object``) and ``merge()`` appends another one.
    """

    _LABELS = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")

    def __init__(self) -> None:
        self._samples: list[dict] = []
        self._ids: set = set()

    def update(self, sample_id: Hashable, pred: Any, gt: Any, score: float) -> None:
        """Add one sample. pred, gt: ``(H, W)`` masks; score: the prediction's confidence."""
        from pycocotools import mask as mask_utils

        if sample_id in self._ids:
            raise InputError(f"duplicate A2D sample id {sample_id!r}")
        pred_np, gt_np = as_mask(pred, "pred"), as_mask(gt, "gt")
        check_shapes(pred=pred_np, gt=gt_np)
        if gt_np.ndim != 2:
            raise InputError(f"A2D masks must be (H, W), got shape {gt_np.shape}")

        def rle(m: np.ndarray) -> dict | None:
            return mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) if m.any() else None

        self._ids.add(sample_id)
        self._samples.append(
            {
                "id": sample_id,
                "size": gt_np.shape,
                "gt": rle(gt_np),
                "pred": rle(pred_np),
                "score": float(score),
            }
        )

    def state(self) -> list[dict]:
        """The collected samples (picklable)."""
        return list(self._samples)

    def merge(self, other: A2DMaskAP | list[dict]) -> A2DMaskAP:
        """Append another accumulator's samples or a ``state()`` list; returns self."""
        for s in other.state() if isinstance(other, A2DMaskAP) else other:
            if s["id"] in self._ids:
                raise InputError(f"duplicate A2D sample id {s['id']!r} in merge")
            self._ids.add(s["id"])
            self._samples.append(s)
        return self

    def compute(self) -> dict[str, float]:
        """``mAP`` (IoU 0.50:0.05:0.95), ``AP50``, ``AP75``, ``AP_small``, ``AP_medium``,
        ``AP_large`` (NaN where COCO has no ground truth to score) and ``num_samples``."""
        require("pycocotools", "A2D mAP")
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        images, anns, dets = [], [], []
        for image_id, s in enumerate(self._samples, start=1):
            h, w = s["size"]
            images.append({"id": image_id, "height": int(h), "width": int(w)})
            if s["gt"] is not None:
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image_id,
                        "category_id": 1,
                        "iscrowd": 0,
                        "segmentation": s["gt"],
                        "area": float(mask_utils.area(s["gt"])),
                        "bbox": mask_utils.toBbox(s["gt"]).tolist(),
                    }
                )
            if s["pred"] is not None:
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "segmentation": s["pred"],
                        "score": s["score"],
                    }
                )
        out = {k: math.nan for k in self._LABELS}
        out["num_samples"] = len(self._samples)
        if not anns:
            return out
        if not dets:  # COCOeval cannot load an empty result list; no detection means AP 0
            return {**out, **{k: 0.0 for k in self._LABELS}}
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = {
                "images": images,
                "annotations": anns,
                "categories": [{"id": 1, "name": "object"}],
            }
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.params.useCats = 0
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        for k, v in zip(self._LABELS, ev.stats[:6]):
            out[k] = float(v) if v >= 0 else math.nan
        return out
