"""refvos.metrics.segmentation: RefVOS IoU protocol, A2D mask mAP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from refvos.errors import InputError
from refvos.metrics import (
    A2DMaskAP,
    RefSegMetrics,
    mask_score,
)


def box(shape, y0, y1, x0, x1):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# ----------------------------------------------------------------- RefVOS overall / mean IoU


def three_samples():
    """(pred, gt) pairs with (I, U) = (2, 4), (0, 0), (9, 10)."""
    a = (box((4, 4), 0, 1, 0, 2), box((4, 4), 0, 1, 0, 4))
    b = (np.zeros((4, 4), bool), np.zeros((4, 4), bool))
    c = (box((4, 4), 0, 3, 0, 3), box((4, 4), 0, 3, 0, 3))
    c[1][3, 0] = True
    return [a, b, c]


def test_refvos_protocol_hand_computed():
    m = RefSegMetrics()
    ious = [m.update(p, g)[0] for p, g in three_samples()]
    assert ious == [0.5, 0.0, 0.9]  # both empty: IoU 0 and still a sample, as RefVOS test.py
    r = m.compute()
    assert r["num_samples"] == 3
    assert (r["cum_intersection"], r["cum_union"]) == (11, 14)
    assert r["overall_iou"] == pytest.approx(11 / 14)
    assert r["mean_iou"] == pytest.approx(1.4 / 3)
    assert r["precision@0.5"] == pytest.approx(2 / 3)  # >= : 0.5 counts
    assert r["precision@0.6"] == pytest.approx(1 / 3)
    assert r["precision@0.9"] == pytest.approx(1 / 3)  # >= : 0.9 counts
    assert set(r) == {
        "overall_iou",
        "mean_iou",
        "num_samples",
        "cum_intersection",
        "cum_union",
        *(f"precision@{t}" for t in ("0.5", "0.6", "0.7", "0.8", "0.9")),
    }


def test_mttr_protocol_eps_and_strict():
    m = RefSegMetrics(protocol="mttr")
    ious = [m.update(p, g)[0] for p, g in three_samples()]
    eps = 1e-6
    assert ious == pytest.approx([(2 + eps) / (4 + eps), 1.0, (9 + eps) / (10 + eps)], abs=1e-12)
    r = m.compute()
    assert r["overall_iou"] == pytest.approx(11 / 14)
    assert r["mean_iou"] == pytest.approx(sum(ious) / 3)
    assert r["precision@0.5"] == 1.0
    assert r["precision@0.9"] == pytest.approx(2 / 3)
    # strict >: a sample whose MTTR IoU is exactly 0.5 is not counted; the RefVOS >= counts it
    counts = ([0.5 - 0.5e-6], [1.0])  # (I + eps) / (U + eps) == 0.5 in float64
    strict, loose = RefSegMetrics("mttr"), RefSegMetrics()
    strict.update_from_counts(*counts)
    loose.update_from_counts([1], [2])
    assert strict.compute()["mean_iou"] == 0.5 and loose.compute()["mean_iou"] == 0.5
    assert strict.compute()["precision@0.5"] == 0.0
    assert loose.compute()["precision@0.5"] == 1.0
    with pytest.raises(InputError):
        RefSegMetrics(protocol="coco")


def test_refvos_edge_cases_empty_masks():
    empty, full = np.zeros((5, 5), bool), np.ones((5, 5), bool)
    for protocol in ("refvos", "mttr"):
        m = RefSegMetrics(protocol)
        empty_pred = m.update(empty, full)[0]
        empty_gt = m.update(full, empty)[0]
        both = m.update(empty, empty)[0]
        assert empty_pred == pytest.approx(0.0, abs=1e-7)
        assert empty_gt == pytest.approx(0.0, abs=1e-7)
        assert both == (0.0 if protocol == "refvos" else 1.0)
        r = m.compute()
        assert r["overall_iou"] == 0.0 and r["cum_union"] == 50
        assert r["precision@0.5"] == (0.0 if protocol == "refvos" else pytest.approx(1 / 3))
    r = RefSegMetrics().compute()  # no samples at all
    assert r["num_samples"] == 0 and r["overall_iou"] == 0.0 and r["mean_iou"] == 0.0


def test_overall_and_mean_iou_differ():
    m = RefSegMetrics()
    big_gt = box((100, 100), 0, 90, 0, 100)  # 9000 px, IoU 0.9
    m.update(box((100, 100), 0, 81, 0, 100), big_gt)
    m.update(box((100, 100), 0, 1, 0, 1), box((100, 100), 0, 1, 0, 10))  # IoU 0.1, U = 10
    r = m.compute()
    assert r["mean_iou"] == pytest.approx(0.5)
    assert r["overall_iou"] == pytest.approx((8100 + 1) / (9000 + 10))
    assert r["overall_iou"] > 0.8 > r["mean_iou"]


def test_batch_torch_and_ignore():
    rng = np.random.default_rng(0)
    pred, gt = rng.random((6, 8, 9)) > 0.5, rng.random((6, 8, 9)) > 0.4
    one, batch = RefSegMetrics(), RefSegMetrics()
    for p, g in zip(pred, gt):
        one.update(p, g)
    ious = batch.update(torch.from_numpy(pred), torch.from_numpy(gt).long())
    assert ious.shape == (6,)
    assert batch.compute() == pytest.approx(one.compute())

    gt_long = gt.astype(np.int64)
    gt_long[:, :2] = 255
    with pytest.raises(InputError, match="ignore"):
        RefSegMetrics().update(pred, gt_long)
    ign = RefSegMetrics()
    ign.update(pred, gt_long, ignore=gt_long == 255)
    ref = RefSegMetrics()
    ref.update(pred[:, 2:], gt[:, 2:])  # dropping the ignored rows is the same thing
    assert ign.compute() == pytest.approx(ref.compute())
    with pytest.raises(InputError, match="shapes"):
        RefSegMetrics().update(pred[0], gt[1, :4])


def test_refseg_merge_equals_single():
    rng = np.random.default_rng(1)
    pred, gt = rng.random((10, 7, 7)) > 0.5, rng.random((10, 7, 7)) > 0.5
    for protocol in ("refvos", "mttr"):
        whole, a, b = RefSegMetrics(protocol), RefSegMetrics(protocol), RefSegMetrics(protocol)
        whole.update(pred, gt)
        a.update(pred[:4], gt[:4])
        b.update(pred[4:], gt[4:])
        summed = torch.tensor(a.state()) + torch.tensor(b.state())  # what all_reduce(SUM) gives
        fresh = RefSegMetrics(protocol).merge(summed)
        assert a.merge(b).compute() == pytest.approx(whole.compute())
        assert fresh.compute() == pytest.approx(whole.compute())
    with pytest.raises(InputError):
        RefSegMetrics().merge(RefSegMetrics("mttr"))
    with pytest.raises(InputError):
        RefSegMetrics().merge(np.zeros(3))


# ------------------------------------------------------------------------- A2D mask mAP


def square(shape=(40, 50), y=5, x=5, size=10):
    return box(shape, y, y + size, x, x + size)


def test_a2d_map_perfect_and_bad():
    perfect, bad = A2DMaskAP(), A2DMaskAP()
    for i in range(4):
        gt = square(y=2 + 5 * i)
        perfect.update(("vid", i, "expr"), gt, gt, 0.9)
        bad.update(i, square(y=2 + 5 * i, x=30), gt, 0.9)  # disjoint
    r = perfect.compute()
    assert r["mAP"] == pytest.approx(1.0) and r["AP50"] == pytest.approx(1.0)
    assert r["AP75"] == pytest.approx(1.0) and r["num_samples"] == 4
    assert set(r) >= {"mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"}
    assert bad.compute()["mAP"] == pytest.approx(0.0)


def test_a2d_map_partial_overlap_hand_computed():
    m = A2DMaskAP()
    for i in range(3):
        gt = square(y=2 + 5 * i)  # 100 px
        pred = gt.copy()
        pred[np.nonzero(gt)[0][72:], np.nonzero(gt)[1][72:]] = False  # 72 px left: IoU 0.72
        assert pred.sum() == 72
        m.update(i, pred, gt, 0.5 + i / 10)
    r = m.compute()
    # matched at IoU thresholds 0.50 .. 0.70 (5 of 10), each with AP 1
    assert r["AP50"] == pytest.approx(1.0)
    assert r["AP75"] == pytest.approx(0.0)
    assert r["mAP"] == pytest.approx(0.5)


def test_a2d_map_empty_prediction_and_empty_gt():
    # one hit, one empty prediction: recall stops at 0.5 -> 51 of COCO's 101 recall points
    m = A2DMaskAP()
    m.update("hit", square(), square(), 0.9)
    m.update("miss", np.zeros((40, 50), bool), square(y=20), 0.0)
    assert m.compute()["mAP"] == pytest.approx(51 / 101)

    # empty ground truth with a prediction is a false positive; its rank decides
    low, high = A2DMaskAP(), A2DMaskAP()
    for acc, fp_score in ((low, 0.5), (high, 0.95)):
        acc.update("hit", square(), square(), 0.9)
        acc.update("fp", square(), np.zeros((40, 50), bool), fp_score)
        acc.update("both-empty", np.zeros((40, 50), bool), np.zeros((40, 50), bool), 0.0)
    assert low.compute()["mAP"] == pytest.approx(1.0)
    assert high.compute()["mAP"] == pytest.approx(0.5)

    no_gt = A2DMaskAP()
    no_gt.update(0, square(), np.zeros((40, 50), bool), 0.7)
    r = no_gt.compute()
    assert math.isnan(r["mAP"]) and r["num_samples"] == 1
    no_det = A2DMaskAP()
    no_det.update(0, np.zeros((40, 50), bool), square(), 0.7)
    assert no_det.compute()["mAP"] == 0.0
    assert math.isnan(A2DMaskAP().compute()["mAP"])


def test_a2d_merge_and_duplicates():
    rng = np.random.default_rng(2)
    samples = []
    for i in range(6):
        gt = square(y=rng.integers(0, 25), x=rng.integers(0, 35), size=12)
        pred = square(y=rng.integers(0, 25), x=rng.integers(0, 35), size=12) | gt
        samples.append((i, pred, gt, float(rng.random())))
    whole, a, b = A2DMaskAP(), A2DMaskAP(), A2DMaskAP()
    for s in samples:
        whole.update(*s)
    for s in samples[:3]:
        a.update(*s)
    for s in samples[3:]:
        b.update(*s)
    assert a.merge(b.state()).compute() == pytest.approx(whole.compute(), nan_ok=True)
    with pytest.raises(InputError, match="duplicate"):
        whole.update(0, square(), square(), 0.1)
    with pytest.raises(InputError, match="duplicate"):
        whole.merge(b)


def test_mask_score():
    prob = np.zeros((4, 4))
    prob[:2] = 0.8
    prob[2:] = 0.2
    assert mask_score(prob, prob > 0.5) == pytest.approx(0.8)
    assert mask_score(prob, np.ones((4, 4), bool)) == pytest.approx(0.5)
    assert mask_score(torch.tensor(prob), np.zeros((4, 4), bool)) == 0.0


# ---------------------------------------------------- DAVIS: independent reference transcription
