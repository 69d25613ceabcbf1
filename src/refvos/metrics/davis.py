"""DAVIS-2017: J, F and J&F as davis2017-evaluation computes them, on the label maps it reads.

- :func:`region_similarity`, :func:`contour_accuracy` -- DAVIS J and F with davis2017-evaluation's
  definitions; :class:`DavisMetrics` averages them per object, annotator and expression kind.
- :class:`DavisFrameScorer` -- each object scored on the merged label map of its frame (overlaps
  resolved by :func:`claim_pixels`, :data:`DAVIS_OVERLAPS`), as davis2017-evaluation scores a
  results folder.
- :class:`SubmissionWriter` -- that results folder: indexed palette PNGs
  (:func:`davis_palette`), ``<dir>/annotator<a>_<kind>/<video>/<frame>.png``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import InputError
from ..io import atomic_open
from .masks import as_mask, check_shapes, to_numpy

# Where two objects' predicted masks overlap on a DAVIS frame, the pixel goes to the most confident
# object (refvos) or to the last one, the highest object id (the authors' merge in test.py).
DAVIS_OVERLAPS = ("confident", "last")


def region_similarity(pred: Any, gt: Any, void: Any = None) -> float:
    """DAVIS J: IoU of two ``(H, W)`` masks, 1 where the union is empty.

    void: optional ``(H, W)`` mask of pixels left out of both I and U (davis2017 void pixels).
    """
    p, g = as_mask(pred, "pred"), as_mask(gt, "gt")
    v = None if void is None else to_numpy(void).astype(bool)
    check_shapes(pred=p, gt=g, void=v)
    if p.ndim != 2:
        raise InputError(f"region_similarity takes (H, W) masks, got shape {p.shape}")
    inter, union = p & g, p | g
    if v is not None:
        inter, union = inter & ~v, union & ~v
    u = int(union.sum())
    return 1.0 if u == 0 else float(inter.sum()) / u


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a ``(H, W)`` mask, as davis2017-evaluation's ``_seg2bmap``.

    A pixel is on the boundary if it differs from its east, south or south-east neighbour
    (outside the image counts as 0); on the last row only the east neighbour counts, on the last
    column only the south one, and the bottom-right pixel is never a boundary.
    """
    seg = np.asarray(seg, dtype=bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[-1, :] = seg[-1, :] ^ east[-1, :]
    b[:, -1] = seg[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def _boundary_radius(shape: tuple[int, int], bound_th: float) -> int:
    """davis2017: bound_th >= 1 is a radius in pixels, else a fraction of the image diagonal."""
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape))
    if radius != int(radius):
        raise InputError(f"bound_th >= 1 is a radius in pixels and must be whole, got {bound_th}")
    return int(radius)


def contour_accuracy(pred: Any, gt: Any, bound_th: float = 0.008, void: Any = None) -> float:
    """DAVIS F: boundary F-measure of two ``(H, W)`` masks, as davis2017-evaluation's ``f_measure``.

    Boundaries come from :func:`seg2bmap` (void pixels removed from both masks first). A
    boundary pixel matches if it lies within the other boundary dilated by
    ``skimage.morphology.disk(r)``, r = ceil(bound_th * image diagonal) (or ``bound_th`` pixels
    if >= 1), with zero padding at the image border as ``cv2.dilate``; the dilation is computed
    exactly as a Euclidean distance transform thresholded at r (the disk is x^2 + y^2 <= r^2).
    P = matched prediction boundary / prediction boundary, R likewise for the ground truth;
    F = 2PR/(P+R). Empty prediction boundary: P = 1, R = 0 (F = 0) unless the ground-truth
    boundary is empty too (F = 1); empty ground-truth boundary only: F = 0.
    """
    p, g = as_mask(pred, "pred"), as_mask(gt, "gt")
    v = None if void is None else to_numpy(void).astype(bool)
    check_shapes(pred=p, gt=g, void=v)
    if p.ndim != 2:
        raise InputError(f"contour_accuracy takes (H, W) masks, got shape {p.shape}")
    if v is not None:
        p, g = p & ~v, g & ~v
    radius = _boundary_radius(p.shape, bound_th)
    fg_b, gt_b = seg2bmap(p), seg2bmap(g)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 or n_gt == 0:
        return 1.0 if n_fg == n_gt else 0.0

    def dilate(b: np.ndarray) -> np.ndarray:
        return ndimage.distance_transform_edt(~b) <= radius

    precision = float((fg_b & dilate(gt_b)).sum()) / n_fg
    recall = float((gt_b & dilate(fg_b)).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


class DavisMetrics:
    """DAVIS-2017 J, F and J&F per object (mean over frames), per annotator and averaged.

    Keys come from the caller: ``(video, object_id, annotator, kind)``, with ``kind`` naming the
    expression type (e.g. ``"first_frame"`` / ``"full_video"``), reported apart. Which frames to
    feed (all, or without the first and last as semi-supervised DAVIS) is the caller's choice.
    Per (kind, annotator): J = mean over objects of the per-object mean J, likewise F, and
    J&F = (J + F) / 2 (davis2017-evaluation's global numbers); ``mean`` averages the annotators.

    ``state()`` maps keys to ``[sum_J, sum_F, num_frames]``; states add up across processes.
    """

    def __init__(self, bound_th: float = 0.008) -> None:
        self.bound_th = bound_th
        self._sums: dict[tuple, np.ndarray] = {}

    def update(self, key: tuple, pred: Any, gt: Any, void: Any = None) -> tuple[float, float]:
        """Score one ``(H, W)`` frame of the object ``key``; returns its (J, F)."""
        j = region_similarity(pred, gt, void)
        f = contour_accuracy(pred, gt, self.bound_th, void)
        self.add(key, j, f)
        return j, f

    def add(self, key: tuple, j: float, f: float) -> None:
        """Add a frame's already computed J and F to the object ``key``."""
        if len(key) != 4:
            raise InputError(f"DAVIS key must be (video, object_id, annotator, kind), got {key!r}")
        self._sums.setdefault(tuple(key), np.zeros(3))[:] += (j, f, 1.0)

    def state(self) -> dict[tuple, np.ndarray]:
        """``{key: [sum_J, sum_F, num_frames]}`` (copies; picklable)."""
        return {k: v.copy() for k, v in self._sums.items()}

    def merge(self, other: DavisMetrics | dict[tuple, Any]) -> DavisMetrics:
        """Add another accumulator's state (or a ``state()`` dict); returns self."""
        for k, v in (other.state() if isinstance(other, DavisMetrics) else other).items():
            self._sums.setdefault(tuple(k), np.zeros(3))[:] += np.asarray(v, dtype=np.float64)
        return self

    def compute(self) -> dict[str, Any]:
        """JSON-able results::

        {"per_object": [{"video", "object_id", "annotator", "kind", "J", "F", "J&F",
                         "num_frames"}, ...],
         "summary": {kind: {"per_annotator": {str(annotator): {"J", "F", "J&F",
                                                              "num_objects"}},
                            "mean": {"J", "F", "J&F", "num_annotators"}}}}
        """
        per_object = []
        groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for (video, obj, annotator, kind), (sj, sf, n) in sorted(
            self._sums.items(), key=lambda kv: tuple(map(str, kv[0]))
        ):
            j, f = float(sj / n), float(sf / n)
            per_object.append(
                {
                    "video": video,
                    "object_id": obj,
                    "annotator": annotator,
                    "kind": kind,
                    "J": j,
                    "F": f,
                    "J&F": (j + f) / 2,
                    "num_frames": int(n),
                }
            )
            groups.setdefault(str(kind), {}).setdefault(str(annotator), []).append((j, f))
        summary = {}
        for kind, by_annotator in groups.items():
            per_annotator = {}
            for annotator, jf in by_annotator.items():
                j, f = (float(x) for x in np.mean(jf, axis=0))
                per_annotator[annotator] = {
                    "J": j,
                    "F": f,
                    "J&F": (j + f) / 2,
                    "num_objects": len(jf),
                }
            mj = float(np.mean([a["J"] for a in per_annotator.values()]))
            mf = float(np.mean([a["F"] for a in per_annotator.values()]))
            summary[kind] = {
                "per_annotator": per_annotator,
                "mean": {
                    "J": mj,
                    "F": mf,
                    "J&F": (mj + mf) / 2,
                    "num_annotators": len(per_annotator),
                },
            }
        return {"per_object": per_object, "summary": summary}


# --------------------------------------------------------------------- label maps and results


def davis_palette() -> list[int]:
    """The DAVIS / Pascal VOC colour map: 256 RGB triplets, flattened (768 ints)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def claim_pixels(
    labels: np.ndarray,
    best: np.ndarray,
    obj: int,
    pred: np.ndarray,
    prob: np.ndarray,
    overlap: str = "confident",
    rank: int | None = None,
) -> None:
    """Add one object to a frame's label map in place: the pixels it predicts go to it where it
    beats the claim so far: its foreground probability (``overlap="confident"``) or its object id
    (``"last"``: the highest id wins, as the original's merge, which wrote the objects in id
    order; ``rank``: the id to compare when ``obj`` is a label of another numbering). labels uint8
    ``(H, W)``; best float ``(H, W)``, -1 where unclaimed; pred bool and prob float ``(H, W)``."""
    if overlap not in DAVIS_OVERLAPS:
        raise InputError(f"DAVIS overlap rule must be one of {DAVIS_OVERLAPS}, got {overlap!r}")
    claim = (
        prob
        if overlap == "confident"
        else np.full(prob.shape, float(obj if rank is None else rank), np.float32)
    )
    win = pred & (claim > best)
    labels[win] = obj
    best[win] = claim[win]


class DavisFrameScorer:
    """DAVIS J and F as davis2017-evaluation scores them: on the merged label map of a frame.

    davis2017-evaluation reads one indexed PNG per frame, so an object's predicted mask is
    ``labels == object_id`` after the objects of the frame were merged (overlaps resolved by
    ``overlap``, :data:`DAVIS_OVERLAPS`, as :class:`SubmissionWriter` writes them). Samples
    are grouped by (kind, sent_id, video, frame), i.e. one annotator's expressions of one frame;
    a group is scored, and its rows' ``J`` / ``F`` set in place, when the samples move on to
    another (kind, video, frame) and at :meth:`close`. Samples must come frame by frame (the
    DAVIS Dataset's order, kept by sharding whole videos).
    """

    def __init__(self, overlap: str = "confident") -> None:
        self.overlap = overlap
        self._open: dict[tuple, list[tuple[dict, np.ndarray, np.ndarray, np.ndarray, Any]]] = {}
        self._frame: tuple | None = None

    def add(
        self,
        row: dict[str, Any],
        pred: np.ndarray,
        prob: np.ndarray,
        gt: np.ndarray,
        void: np.ndarray | None,
    ) -> None:
        """One object's record (given ``J`` / ``F`` later), bool ``pred``, float ``prob``,
        bool ``gt`` and optional bool ``void``, all ``(H, W)``."""
        frame = (row["kind"], row["video"], row["frame"])
        if frame != self._frame:
            self.flush()
            self._frame = frame
        key = (row["kind"], row.get("sent_id"), row["video"], row["frame"])
        self._open.setdefault(key, []).append((row, pred, prob, gt, void))

    def flush(self) -> None:
        for objects in self._open.values():
            labels = np.zeros(objects[0][1].shape, np.uint8)
            best = np.full(objects[0][1].shape, -1.0, np.float32)
            for k, (row, pred, prob, _, _) in enumerate(objects, start=1):
                claim_pixels(labels, best, k, pred, prob, self.overlap, int(row["object_id"]))
            for k, (row, _, _, gt, void) in enumerate(objects, start=1):
                merged = labels == k
                row.update(
                    J=region_similarity(merged, gt, void), F=contour_accuracy(merged, gt, void=void)
                )
        self._open.clear()

    def close(self) -> None:
        self.flush()
        self._frame = None


class SubmissionWriter:
    """DAVIS-format results: ``<dir>/annotator<a>_<kind>/<video>/<frame>.png``, indexed palette
    PNGs with object ids 0 (background) .. N, the layout ``davis2017-evaluation`` reads as a
    results folder. Where several objects are predicted on one pixel, it goes to the object with
    the highest foreground probability there (``overlap="confident"``) or to the highest object id
    (``"last"``, the authors' merge). A frame is written once the samples move on to another
    frame (and at :meth:`close`)."""

    def __init__(self, root: str | os.PathLike, overlap: str = "confident") -> None:
        self.root = Path(root)
        self.overlap = overlap
        self._open: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._current: tuple | None = None
        self._written: set[tuple] = set()
        self._palette = davis_palette()

    def path(self, annotator: Any, kind: str, video: str, frame: str) -> Path:
        return self.root / f"annotator{annotator}_{kind}" / str(video) / f"{frame}.png"

    def add(self, meta: dict[str, Any], pred: np.ndarray, prob: np.ndarray) -> None:
        """One object's ``(H, W)`` bool mask and foreground probabilities on one frame."""
        try:
            key = (meta["annotator"], meta["kind"], meta["video"], meta["frame"])
            obj = int(meta["object_id"])
        except KeyError as e:
            raise InputError(f"--submission needs DAVIS samples; sample meta lacks {e}") from None
        if not 0 < obj < 256:
            raise InputError(f"object id {obj} does not fit an indexed PNG (1..255)")
        if key[1:] != self._current:
            self.flush()
            self._current = key[1:]
        if key not in self._open:
            labels, best = np.zeros(pred.shape, np.uint8), np.full(pred.shape, -1.0, np.float32)
            if key in self._written:  # samples came back to a frame already written: merge
                with Image.open(self.path(*key)) as im:
                    labels = np.array(im)
                best[labels > 0] = np.inf if self.overlap == "confident" else labels[labels > 0]
            self._open[key] = (labels, best)
        claim_pixels(*self._open[key], obj, pred, prob, self.overlap)

    def flush(self) -> None:
        for key, (labels, _) in self._open.items():
            im = Image.fromarray(labels, mode="P")
            im.putpalette(self._palette)
            with atomic_open(self.path(*key), "wb") as f:
                im.save(f, format="PNG")
            self._written.add(key)
        self._open.clear()

    def close(self) -> None:
        self.flush()
        self._current = None
