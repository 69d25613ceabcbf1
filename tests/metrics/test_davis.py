"""refvos.metrics.davis: DAVIS J and F against davis2017-evaluation's definitions, the
accumulator, each object scored on its frame's merged label map, the results folder of palette
PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.morphology import disk

from refvos.data.davis import read_object_ids
from refvos.errors import InputError
from refvos.metrics import (
    DavisMetrics,
    contour_accuracy,
    region_similarity,
    seg2bmap,
)
from refvos.metrics.davis import DavisFrameScorer, SubmissionWriter


def box(shape, y0, y1, x0, x1):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def ref_seg2bmap(seg):
    """davis2017 _seg2bmap, pixel by pixel: differs from E, S or SE neighbour (0 outside);
    last row: only E; last column: only S; bottom-right: never."""
    h, w = seg.shape

    def at(y, x):
        return bool(seg[y, x]) if y < h and x < w else False

    b = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            v = at(y, x)
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif y == h - 1:
                b[y, x] = v != at(y, x + 1)
            elif x == w - 1:
                b[y, x] = v != at(y + 1, x)
            else:
                b[y, x] = v != at(y, x + 1) or v != at(y + 1, x) or v != at(y + 1, x + 1)
    return b


def ref_f_measure(pred, gt, void=None, bound_th=0.008):
    """davis2017 f_measure with scipy.ndimage binary dilation by skimage's disk."""
    if void is not None:
        pred, gt = pred & ~void, gt & ~void
    r = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
    fg_b, gt_b = ref_seg2bmap(pred), ref_seg2bmap(gt)
    fp = disk(int(r)).astype(bool)
    fg_dil = ndimage.binary_dilation(fg_b, structure=fp, border_value=0)
    gt_dil = ndimage.binary_dilation(gt_b, structure=fp, border_value=0)
    n_fg, n_gt = fg_b.sum(), gt_b.sum()
    if n_fg == 0 and n_gt > 0:
        p, rec = 1, 0
    elif n_fg > 0 and n_gt == 0:
        p, rec = 0, 1
    elif n_fg == 0 and n_gt == 0:
        p, rec = 1, 1
    else:
        p, rec = (fg_b & gt_dil).sum() / n_fg, (gt_b & fg_dil).sum() / n_gt
    return 0.0 if p + rec == 0 else 2 * p * rec / (p + rec)


def ref_iou(pred, gt, void=None):
    keep = np.ones_like(pred) if void is None else ~void
    union = ((pred | gt) & keep).sum()
    return 1.0 if union == 0 else ((pred & gt) & keep).sum() / union


def random_masks(rng, n):
    """Blobby, noisy, empty, full and border-touching masks of assorted (odd) sizes."""
    out = []
    for i in range(n):
        h, w = int(rng.integers(1, 70)), int(rng.integers(1, 90))
        kind = i % 5
        if kind == 0:
            m = ndimage.gaussian_filter(rng.random((h, w)), 3) > 0.5
        elif kind == 1:
            m = rng.random((h, w)) > 0.7
        elif kind == 2:
            m = np.zeros((h, w), bool) if i % 2 else np.ones((h, w), bool)
        else:
            m = box((h, w), *sorted(rng.integers(0, h + 1, 2)), *sorted(rng.integers(0, w + 1, 2)))
        out.append(m)
    return out


def test_seg2bmap_hand_case_and_reference():
    seg = box((4, 4), 1, 3, 1, 3)
    expected = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(seg), expected)
    np.testing.assert_array_equal(seg2bmap(np.ones((3, 3), bool)), np.zeros((3, 3), bool))
    rng = np.random.default_rng(3)
    for m in random_masks(rng, 40):
        np.testing.assert_array_equal(seg2bmap(m), ref_seg2bmap(m))


def test_j_and_f_match_reference_on_random_masks():
    rng = np.random.default_rng(4)
    masks = random_masks(rng, 120)
    checked = 0
    for a in masks:
        # a partner of the same shape: a perturbed / shifted copy or an independent mask
        b = np.roll(a, int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2)))
        b = b ^ (rng.random(a.shape) > 0.97) if rng.random() < 0.5 else b
        void = rng.random(a.shape) > 0.9 if rng.random() < 0.3 else None
        for th in (0.008, 0.02, 2):
            assert contour_accuracy(b, a, th, void) == pytest.approx(
                ref_f_measure(b, a, void, th), abs=1e-6
            )
        assert region_similarity(b, a, void) == pytest.approx(ref_iou(b, a, void), abs=1e-6)
        checked += 0 < contour_accuracy(b, a) < 1
    assert checked > 20  # the comparison covered non-trivial F values


def test_f_hand_case():
    # 3x3 squares in a 20x20 image (radius ceil(0.008 * 28.3) = 1), shifted by 3 columns:
    # 6 of 12 boundary pixels lie within 1 pixel of the other boundary, both ways.
    gt, pred = box((20, 20), 2, 5, 2, 5), box((20, 20), 2, 5, 5, 8)
    assert contour_accuracy(pred, gt) == pytest.approx(0.5)
    assert contour_accuracy(gt, gt) == 1.0
    assert contour_accuracy(box((20, 20), 2, 5, 12, 15), gt) == 0.0
    with pytest.raises(InputError):
        contour_accuracy(pred, gt, bound_th=2.5)


def test_davis_edge_cases():
    empty, obj = np.zeros((30, 40), bool), box((30, 40), 5, 15, 5, 20)
    assert region_similarity(empty, empty) == 1.0
    assert region_similarity(empty, obj) == 0.0
    assert region_similarity(obj, empty) == 0.0
    assert contour_accuracy(empty, empty) == 1.0
    assert contour_accuracy(empty, obj) == 0.0  # P = 1, R = 0
    assert contour_accuracy(obj, empty) == 0.0  # P = 0, R = 1
    assert region_similarity(torch.from_numpy(obj), obj) == 1.0
    assert region_similarity(obj, obj, void=obj) == 1.0  # everything void: empty union


def test_davis_accumulator():
    acc = DavisMetrics()
    obj = box((30, 40), 5, 15, 5, 20)
    empty = np.zeros_like(obj)
    # object 1, annotator 1: one perfect frame, one missed frame -> J = F = 0.5
    acc.update(("dogs", 1, 1, "full_video"), obj, obj)
    assert acc.update(("dogs", 1, 1, "full_video"), empty, obj) == (0.0, 0.0)
    # object 2, annotator 1: perfect -> 1; annotator 2: known J, F values
    acc.add(("dogs", 2, 1, "full_video"), 1.0, 1.0)
    acc.add(("dogs", 1, 2, "full_video"), 0.2, 0.4)
    acc.add(("dogs", 1, 1, "first_frame"), 0.3, 0.1)
    r = acc.compute()
    per_obj = {(o["video"], o["object_id"], o["annotator"], o["kind"]): o for o in r["per_object"]}
    o = per_obj[("dogs", 1, 1, "full_video")]
    assert (o["J"], o["F"], o["J&F"], o["num_frames"]) == (0.5, 0.5, 0.5, 2)
    full = r["summary"]["full_video"]
    assert full["per_annotator"]["1"] == {"J": 0.75, "F": 0.75, "J&F": 0.75, "num_objects": 2}
    assert full["per_annotator"]["2"]["J&F"] == pytest.approx(0.3)
    assert full["mean"]["J"] == pytest.approx((0.75 + 0.2) / 2)
    assert full["mean"]["F"] == pytest.approx((0.75 + 0.4) / 2)
    assert full["mean"]["J&F"] == pytest.approx((0.75 + 0.2 + 0.75 + 0.4) / 4)
    assert full["mean"]["num_annotators"] == 2
    assert r["summary"]["first_frame"]["mean"]["J&F"] == pytest.approx(0.2)

    a, b = DavisMetrics(), DavisMetrics()
    a.add(("v", 1, 1, "k"), 1.0, 0.5)
    b.add(("v", 1, 1, "k"), 0.0, 0.5)
    b.add(("v", 2, 1, "k"), 0.4, 0.4)
    merged = a.merge(b.state()).compute()
    assert merged["summary"]["k"]["per_annotator"]["1"]["J"] == pytest.approx((0.5 + 0.4) / 2)
    with pytest.raises(InputError):
        acc.add(("v", 1), 1.0, 1.0)


def test_f_boundary_tolerance_is_davis2017s_at_a_davis_frame_size():
    """davis2017's bound_th = 0.008 of the diagonal: radius ceil(0.008 * 979.7) = 8 on a 480x854
    frame (0.007 gives 7, 0.009 gives 9), so a box shifted by 8 columns has F = 1 and by 9 not."""
    gt = box((480, 854), 100, 300, 200, 400)
    shifted = {d: box((480, 854), 100, 300, 200 + d, 400 + d) for d in (8, 9)}
    assert contour_accuracy(shifted[8], gt) == 1.0
    assert contour_accuracy(shifted[9], gt) < 0.7
    metrics = DavisMetrics()
    assert metrics.update(("v", 1, 0, "full"), shifted[8], gt)[1] == 1.0
    assert metrics.update(("v", 1, 0, "full"), shifted[9], gt)[1] < 0.7


def test_submission_overlap_goes_to_most_confident(tmp_path):
    w = SubmissionWriter(tmp_path)
    meta = {"annotator": 1, "kind": "full_video", "video": "v", "frame": "00000"}
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:, :3], b[:, 1:] = True, True
    w.add({**meta, "object_id": 1}, a, np.full((4, 4), 0.9, np.float32))
    w.add({**meta, "object_id": 2}, b, np.where(np.arange(4) < 2, 0.6, 0.95)[None].repeat(4, 0))
    w.close()
    labels = read_object_ids(tmp_path / "annotator1_full_video" / "v" / "00000.png")
    np.testing.assert_array_equal(labels[0], [1, 1, 2, 2])


@pytest.mark.parametrize("overlap, row", [("confident", [1, 1, 2, 2]), ("last", [1, 2, 2, 2])])
def test_davis_overlap_rule_in_submission_and_merged_map(tmp_path, overlap, row):
    """Objects 1 and 2 share columns 1 and 2; object 1 is surer on column 1, object 2 on column
    2. refvos's rule gives each column to the surer object, the original's merge
    (``overlap="last"``) both to the highest id, object 2 (issue 21, item 5)."""
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:, :3], b[:, 1:] = True, True
    pa, pb = (
        np.full((4, 4), 0.9, np.float32),
        np.where(np.arange(4) < 2, 0.6, 0.95)[None].repeat(4, 0),
    )
    w = SubmissionWriter(tmp_path, overlap)
    meta = {"annotator": 1, "kind": "full_video", "video": "v", "frame": "00000"}
    w.add({**meta, "object_id": 1}, a, pa)
    w.add({**meta, "object_id": 2}, b, pb)
    w.close()
    np.testing.assert_array_equal(
        read_object_ids(tmp_path / "annotator1_full_video" / "v" / "00000.png")[0], row
    )
    scorer = DavisFrameScorer(overlap)
    rows = [
        {"kind": "first_frame", "video": "v", "frame": "0", "sent_id": "1-0", "object_id": k}
        for k in (1, 2)
    ]
    for r, pred, prob in zip(rows, (a, b), (pa, pb)):
        scorer.add(
            r, pred, prob, pred, None
        )  # ground truth = own prediction: J < 1 where it lost pixels
    scorer.close()
    # confident: each object loses the column where the other is surer; last: object 2 keeps all
    assert [r["J"] < 1 for r in rows] == [True, overlap == "confident"]
