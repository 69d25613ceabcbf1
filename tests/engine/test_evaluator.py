"""refvos.engine.evaluator: metrics through the evaluator, per-sample records, work sharing,
submission PNGs, sharding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refvos.data.build import build_dataset
from refvos.data.davis import read_object_ids
from refvos.engine import evaluator
from refvos.engine.evaluator import evaluate
from refvos.engine.samples import sample_meta
from refvos.metrics.davis import davis_palette
from tests.helpers import (
    TableModel,
    assert_mixed,
    make_mixed_model,
    make_tiny_model,
    reference_logits,
)


class ListDataset(torch.utils.data.Dataset):
    """In-memory samples ``(meta, gt, sentence)`` on 16 x 16 images."""

    def __init__(self, items) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        meta, gt, sentence = self.items[i]
        g = torch.Generator().manual_seed(i)
        ids = torch.zeros(10, dtype=torch.long)
        ids[0], ids[1] = 101, 1000 + i
        return {
            "image": torch.randn(3, 16, 16, generator=g),
            "mask": torch.as_tensor(gt).long(),
            "input_ids": ids,
            "attention_mask": (ids > 0).long(),
            "sentence": sentence,
            "meta": dict(meta),
        }


def _square(y0, x0, n=6):
    m = np.zeros((16, 16), np.uint8)
    m[y0 : y0 + n, x0 : x0 + n] = 1
    return m


EMPTY = np.zeros((16, 16), np.uint8)
# (gt, prediction): perfect, empty prediction, empty gt, both empty, half overlap
CASES = [
    (_square(2, 2), _square(2, 2)),
    (_square(2, 2), EMPTY),
    (EMPTY, _square(4, 4)),
    (EMPTY, EMPTY),
    (_square(0, 0, 8), _square(0, 4, 8)),
]


def _edge_dataset(name: str):
    items = []
    for k, (gt, _) in enumerate(CASES):
        meta = {"dataset": name, "video": f"v{k}", "frame": "00000", "object_id": 1}
        if name == "davis":
            meta.update(annotator=1, kind="first_frame")
        items.append((meta, gt, f"sentence {k}"))
    preds = {k: p.astype(bool) for k, (_, p) in enumerate(CASES)}
    ds = ListDataset(items)
    return ds, TableModel(ds, predict=lambda s: preds[int(s["meta"]["video"][1:])])


@pytest.mark.parametrize("name", ["refcoco", "a2d", "davis"])
def test_metric_edge_cases(name):
    ds, model = _edge_dataset(name)
    result = evaluate(model, ds, device="cpu", davis_frames="all")
    rows, m = result["samples"], result["metrics"]
    assert [r["iou"] for r in rows] == [1.0, 0.0, 0.0, 0.0, pytest.approx(32 / 96)]
    assert [(r["intersection"], r["union"]) for r in rows] == [
        (36, 36),
        (0, 36),
        (0, 36),
        (0, 0),
        (32, 96),
    ]
    assert [r["pred_area"] for r in rows] == [36, 0, 36, 0, 64]
    assert rows[1]["score"] == 0.0 and rows[0]["score"] > 0.99
    ref = m["refvos"]
    assert ref["overall_iou"] == pytest.approx(68 / 204)
    assert ref["mean_iou"] == pytest.approx((1 + 32 / 96) / 5)
    assert ref["precision@0.5"] == pytest.approx(1 / 5)
    if name == "a2d":  # MTTR: both empty counts as IoU 1
        assert m["mttr"]["mean_iou"] == pytest.approx(
            (1 + 1 + 32 / 96 + 1e-6 / (96 + 1e-6)) / 5, abs=1e-5
        )
        assert m["mttr"]["precision@0.5"] == pytest.approx(2 / 5)
        assert 0 < m["a2d_map"]["mAP"] < 1
    if name == "davis":
        assert [r["J"] for r in rows] == [1.0, 0.0, 0.0, 1.0, pytest.approx(32 / 96)]
        assert [r["F"] for r in rows][:4] == [1.0, 0.0, 0.0, 1.0]
        s = m["davis"]["summary"]["first_frame"]
        assert s["per_annotator"]["1"]["num_objects"] == 5
        assert s["mean"]["J"] == pytest.approx((2 + 32 / 96) / 5)
    json.dumps(m, allow_nan=False)


def test_perfect_model_refcoco_and_records(tiny_synthetic, tmp_path):
    ds = build_dataset("refcoco", tiny_synthetic["refcoco"], "val", mode="eval")
    model = TableModel(ds)
    result = evaluate(
        model, ds, device="cpu", output_dir=tmp_path, display_dir=tmp_path / "d", display_limit=3
    )
    m = result["metrics"]
    assert m["refvos"]["overall_iou"] == 1.0 and m["refvos"]["mean_iou"] == 1.0
    assert all(m["refvos"][f"precision@{t}"] == 1.0 for t in ("0.5", "0.6", "0.7", "0.8", "0.9"))
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == len(ds) == m["num_samples"]
    rows = [json.loads(x) for x in lines]
    assert [r["index"] for r in rows] == list(range(len(ds)))
    assert {"image_id", "ref_id", "sent_id", "sentence", "intersection", "union", "iou"} <= set(
        rows[0]
    )
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    assert (
        m["runtime"]["precision"]["precision"] == "fp32"
        and m["runtime"]["precision"]["source"] == "explicit"
    )
    assert m["runtime"]["compile"]["setting"] == "auto" and not m["runtime"]["compile"]["compiled"]
    assert len(list((tmp_path / "d").glob("*.png"))) == 3
    # every distinct sentence encoded once
    assert model.text_calls == len({tuple(ds[i]["input_ids"].tolist()) for i in range(len(ds))})


def test_records_aggregate_consistently_and_batching(tiny_synthetic):
    full = build_dataset("refcoco", tiny_synthetic["refcoco"], "val", mode="eval")
    ds = torch.utils.data.Subset(full, range(6))
    model = make_tiny_model(seed=3)
    one = evaluate(model, ds, device="cpu")
    four = evaluate(model, ds, device="cpu", batch_size=4)
    rows = one["samples"]
    cum_i, cum_u = sum(r["intersection"] for r in rows), sum(r["union"] for r in rows)
    ref = one["metrics"]["refvos"]
    assert ref["cum_intersection"] == cum_i and ref["cum_union"] == cum_u
    assert ref["mean_iou"] == pytest.approx(np.mean([r["iou"] for r in rows]))
    for a, b in zip(rows, four["samples"]):
        assert abs(a["pred_area"] - b["pred_area"]) <= 2
        assert a["sent_id"] == b["sent_id"]


def test_backbone_once_per_picture(tiny_synthetic):
    ds = build_dataset("refcoco", tiny_synthetic["refcoco"], "val", mode="eval")
    model = make_mixed_model()
    runner = evaluator._Runner(model, torch.device("cpu"), "fp32")
    samples = [ds[i] for i in range(min(8, len(ds)))]
    for s in samples:
        runner([s])
    assert runner.backbone_runs == len({s["meta"]["image_id"] for s in samples})
    assert runner.text_encodings == len({s["sentence"] for s in samples})
    # the shared-feature path equals the original's pipeline computed independently
    for s in samples[:3]:
        masks, _ = runner([s])
        logits = reference_logits(
            model, s["image"][None], s["input_ids"][None], s["attention_mask"][None]
        )
        expected = logits.argmax(1).bool()
        assert_mixed(expected)
        assert torch.equal(masks, expected)


def test_perfect_model_davis_submission_round_trip(tiny_synthetic, tmp_path):
    root = tiny_synthetic["davis"]
    parts = [
        build_dataset("davis", root, "val", mode="eval", annotator="both", kind=k)
        for k in ("first_frame", "full_video")
    ]
    ds = torch.utils.data.ConcatDataset(parts)
    result = evaluate(TableModel(ds), ds, device="cpu", submission_dir=tmp_path / "sub")
    d = result["metrics"]["davis"]
    assert set(d["summary"]) == {"first_frame", "full_video"}
    for s in d["summary"].values():
        assert set(s["per_annotator"]) == {"1", "2"}
        assert s["mean"]["J&F"] == 1.0 and s["mean"]["num_annotators"] == 2
    assert d["frames"] == "inner" and all(o["num_frames"] == 2 for o in d["per_object"])
    video = (root / "DAVIS" / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    gt_dir = root / "DAVIS" / "Annotations" / "480p" / video
    for folder in ("annotator1_first_frame", "annotator2_full_video"):
        pngs = sorted((tmp_path / "sub" / folder / video).glob("*.png"))
        assert [p.name for p in pngs] == sorted(p.name for p in gt_dir.glob("*.png"))
        for p in pngs:
            np.testing.assert_array_equal(read_object_ids(p), read_object_ids(gt_dir / p.name))
    from PIL import Image

    with Image.open(pngs[0]) as im:
        assert im.mode == "P" and im.getpalette()[:9] == davis_palette()[:9]


def test_perfect_model_a2d_map(tiny_synthetic):
    ds = build_dataset("a2d", tiny_synthetic["a2d"], "test", mode="eval")
    m = evaluate(TableModel(ds), ds, device="cpu")["metrics"]
    assert m["a2d_map"]["mAP"] == pytest.approx(1.0) and m["a2d_map"]["AP50"] == pytest.approx(1.0)
    present = [sample_meta(ds, i)["present"] for i in range(len(ds))]
    assert not all(present)  # the synthetic test split has a frame where the instance is absent
    # MTTR's protocol (and the mAP) leave the absent frames out; RefVOS's scores them IoU 0.
    assert m["mttr"]["overall_iou"] == pytest.approx(1.0) and m["mttr"][
        "mean_iou"
    ] == pytest.approx(1.0)
    assert m["mttr"]["num_samples"] == sum(present) and m["refvos"]["num_samples"] == len(ds)
    assert m["a2d_map"]["num_samples"] == sum(present)
    assert m["refvos"]["mean_iou"] == pytest.approx(sum(present) / len(ds))
    assert m["refvos"]["overall_iou"] == pytest.approx(1.0)  # absent + empty prediction: U = 0


def test_a2d_absent_frame_prediction_counts_in_refvos_union_only():
    """An absent instance (all-zero mask): RefVOS scores IoU 0 and adds the predicted pixels to
    the union; MTTR's block and the mAP leave the frame out."""
    gt = np.zeros((16, 16), bool)
    gt[2:8, 2:8] = True
    items = [
        (
            {"dataset": "a2d", "video": "v", "frame": "00001", "object_id": 0, "present": True},
            gt,
            "the dog",
        ),
        (
            {"dataset": "a2d", "video": "v", "frame": "00002", "object_id": 0, "present": False},
            np.zeros((16, 16), bool),
            "the dog",
        ),
    ]
    ds = ListDataset(items)
    model = TableModel(ds, predict=lambda s: gt)  # predicts the same 36 pixels on both frames
    m = evaluate(model, ds, device="cpu")["metrics"]
    assert m["refvos"]["overall_iou"] == pytest.approx(36 / 72)
    assert m["refvos"]["mean_iou"] == pytest.approx(0.5)
    assert m["mttr"]["num_samples"] == 1 and m["mttr"]["overall_iou"] == pytest.approx(1.0)
    assert m["a2d_map"]["num_samples"] == 1 and m["a2d_map"]["mAP"] == pytest.approx(1.0)


def test_bad_inputs(tiny_synthetic):
    ds = build_dataset("refcoco", tiny_synthetic["refcoco"], "val", mode="eval")
    from refvos.errors import InputError

    with pytest.raises(InputError, match="DAVIS"):
        evaluate(TableModel(ds), ds, device="cpu", submission_dir="x")
    with pytest.raises(InputError, match="batch_size"):
        evaluate(TableModel(ds), ds, device="cpu", batch_size=0)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        for name in ("a2d", "davis"):
            ds, model = _edge_dataset(name)
            evaluate(
                model,
                ds,
                device="cpu",
                output_dir=f"{out_dir}/{name}",
                submission_dir=f"{out_dir}/sub" if name == "davis" else None,
            )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_distributed_two_processes_match_one(tmp_path):
    """Two gloo processes: shards, gathered records and A2D states, rank-0 files, whole videos."""
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    for name in ("a2d", "davis"):
        ds, model = _edge_dataset(name)
        single = evaluate(model, ds, device="cpu")
        merged = json.loads((tmp_path / name / "metrics.json").read_text())
        assert merged == json.loads(json.dumps(single["metrics"]))
        rows = [json.loads(x) for x in (tmp_path / name / "samples.jsonl").read_text().splitlines()]
        assert [r["index"] for r in rows] == list(range(len(ds)))
    assert len(list((tmp_path / "sub").glob("annotator1_first_frame/*/00000.png"))) == len(CASES)


def test_davis_j_and_f_score_the_merged_label_map_of_a_frame():
    """Two overlapping predictions on one frame: the overlap goes to the more confident object
    (as in the submitted PNG davis2017-evaluation reads), so object 2 loses it in J; the RefVOS
    IoU still scores each object on its own. Annotator 2's samples of the same frame are merged
    apart from annotator 1's."""
    gt1, gt2 = _square(2, 2, 6).astype(bool), _square(2, 8, 6).astype(bool)  # side by side
    pred1 = np.zeros((16, 16))
    pred1[2:8, 2:11] = 1.0  # object 1 spills 3 columns into object 2, confidently (p ~ 0.9997)
    pred2 = gt2 * 0.75  # object 2 exactly, less confident (p ~ 0.98)
    items, table = [], {}
    for annotator in (1, 2):
        for obj, gt in ((1, gt1), (2, gt2)):
            meta = {
                "dataset": "davis",
                "video": "v",
                "frame": "00000",
                "object_id": obj,
                "annotator": annotator,
                "kind": "first_frame",
                "sent_id": f"{annotator}-0",
            }
            items.append((meta, gt, f"object {obj} by {annotator}"))
            # annotator 2's object 1 prediction is exact: no overlap there
            table[len(table)] = (
                pred1 if (annotator, obj) == (1, 1) else (gt1 if obj == 1 else pred2)
            )

    class OneFrame(ListDataset):  # every sample shows the same picture (one frame)
        def __getitem__(self, i):
            return {**super().__getitem__(i), "image": super().__getitem__(0)["image"]}

    ds = OneFrame(items)
    model = TableModel(
        ds,
        predict=lambda s: table[
            int(s["sentence"].split()[1]) - 1 + 2 * (int(s["sentence"].split()[-1]) - 1)
        ],
    )
    rows = evaluate(model, ds, device="cpu", davis_frames="all")["samples"]
    by = {(r["annotator"], r["object_id"]): r for r in rows}
    assert by[(1, 1)]["J"] == pytest.approx(36 / 54) and by[(1, 1)]["iou"] == pytest.approx(36 / 54)
    assert by[(1, 2)]["J"] == pytest.approx(18 / 36)  # the 18 overlapping pixels went to object 1
    assert by[(1, 2)]["iou"] == 1.0 and by[(1, 2)]["F"] < 1.0  # RefVOS IoU: each object on its own
    assert by[(2, 1)]["J"] == by[(2, 2)]["J"] == by[(2, 2)]["F"] == 1.0
