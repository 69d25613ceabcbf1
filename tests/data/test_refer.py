import json
import pickle

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from refvos.data import REFER, build_dataset
from refvos.errors import DataFormatError, UnsafePickleError
from tests.helpers import make_tiny_model

H, W = 40, 60


def write_refcoco(root, refs, anns, dataset="refcoco", split_by="unc"):
    (root / dataset).mkdir(parents=True, exist_ok=True)
    imgdir = root / "images" / "mscoco" / "images" / "train2014"
    imgdir.mkdir(parents=True, exist_ok=True)
    images = []
    for image_id in sorted({a["image_id"] for a in anns}):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(np.full((H, W, 3), 100 + image_id, np.uint8)).save(imgdir / name)
        images.append({"id": image_id, "file_name": name, "height": H, "width": W})
    (root / dataset / "instances.json").write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
        )
    )
    (root / dataset / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))


def sq(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def box_mask(x0, y0, x1, y1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def ref(ref_id, ann_id, image_id, split, sents):
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "split": split,
        "sentences": [
            {"raw": s, "sent": s.lower(), "tokens": s.lower().split(), "sent_id": ref_id * 10 + k}
            for k, s in enumerate(sents)
        ],
    }


@pytest.fixture
def polygons_root(tmp_path):
    """A two-image RefCOCO layout written by hand: overlapping polygons, compressed and
    uncompressed RLE masks."""
    rle = mask_utils.encode(np.asfortranarray(box_mask(5, 5, 15, 25)))
    rle["counts"] = rle["counts"].decode("ascii")  # as stored in JSON
    m = box_mask(30, 10, 50, 20)
    flat = m.flatten(order="F")
    counts, run, cur = [], 0, 0  # uncompressed RLE: alternating run lengths starting with 0s
    for v in flat:
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    anns = [
        # two overlapping polygons: the union is what counts
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, 30, 20],
            "iscrowd": 0,
            "segmentation": [sq(0, 0, 20, 20), sq(10, 0, 30, 20)],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "bbox": [5, 5, 10, 20],
            "iscrowd": 1,
            "segmentation": rle,
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 1,
            "bbox": [30, 10, 20, 10],
            "iscrowd": 1,
            "segmentation": {"size": [H, W], "counts": counts},
        },
    ]
    refs = [
        ref(1, 1, 1, "train", ["The Left Thing", "the wide one", "both boxes"]),
        ref(2, 2, 1, "testA", ["tall box"]),
        ref(3, 3, 2, "testB", ["the right box"]),
    ]
    write_refcoco(tmp_path, refs, anns)
    return tmp_path


def test_union_of_overlapping_polygons(polygons_root):
    refer = REFER(polygons_root, "refcoco", "unc")
    out = refer.getMask(refer.Refs[1])
    assert out["mask"].dtype == np.uint8 and out["mask"].shape == (H, W)
    assert out["mask"].max() == 1
    assert out["area"] == 30 * 20  # the sum of the two polygons would be 800 with a hole of 2s
    assert out["mask"][:20, :30].all() and out["mask"][20:].sum() == 0


def test_original_rule_keeps_pixels_covered_by_exactly_one_polygon(polygons_root):
    """The authors' getMask sums the polygons' masks and their Dataset keeps ``mask == 1``:
    the overlap of the two polygons (columns 10-19) becomes background."""
    refer = REFER(polygons_root, "refcoco", "unc")
    union = refer.getMask(refer.Refs[1])["mask"]
    out = refer.getMask(refer.Refs[1], rule="original")
    assert out["mask"].dtype == np.uint8 and out["area"] == 400
    expected = union.copy()
    expected[:20, 10:20] = 0
    assert np.array_equal(out["mask"], expected)
    # an RLE annotation is one mask: both rules agree
    assert np.array_equal(
        refer.getMask(refer.Refs[2], rule="original")["mask"], box_mask(5, 5, 15, 25)
    )
    with pytest.raises(ValueError, match="mask rule"):
        refer.getMask(refer.Refs[1], rule="sum")


def test_refcoco_mask_rule_through_the_dataset_and_cli(polygons_root, tmp_path):
    import json as _json

    from refvos.checkpoint import save_checkpoint
    from refvos.cli import main

    union = build_dataset("refcoco", polygons_root, "train", "eval")
    original = build_dataset("refcoco", polygons_root, "train", "eval", mask_rule="original")
    assert union[0]["mask"].sum() == 600 and original[0]["mask"].sum() == 400
    ckpt = save_checkpoint(tmp_path / "tiny.pth", make_tiny_model())
    areas = {}
    for rule in ("union", "original"):
        out = tmp_path / rule
        assert (
            main(
                [
                    "test",
                    "--dataset",
                    "refcoco",
                    "--resume",
                    str(ckpt),
                    "--refer_data_root",
                    str(polygons_root),
                    "--split",
                    "train",
                    "--refcoco-mask",
                    rule,
                    "--output-dir",
                    str(out),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        rows = [_json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
        areas[rule] = {r["gt_area"] for r in rows}
    assert areas == {"union": {600}, "original": {400}}


def test_compressed_and_uncompressed_rle(polygons_root):
    refer = REFER(polygons_root)
    assert np.array_equal(refer.getMask(refer.Refs[2])["mask"], box_mask(5, 5, 15, 25))
    got = refer.getMask(refer.loadRefs(3)[0])
    assert np.array_equal(got["mask"], box_mask(30, 10, 50, 20)) and got["area"] == 200


def test_indexes_and_queries(polygons_root):
    refer = REFER(polygons_root)
    assert refer.getRefIds(split="train") == [1]
    assert refer.getRefIds(split="test") == [2, 3]
    assert refer.getRefIds(split="testA") == [2]
    assert refer.getRefIds(image_ids=[1]) == [1, 2]
    assert refer.getRefIds(image_ids=1, split="testA") == [2]
    assert refer.getAnnIds(image_ids=[1]) == [1, 2]
    assert refer.getAnnIds(ref_ids=[3]) == [3]
    assert refer.getImgIds(ref_ids=[1, 2, 3]) == [1, 2]
    assert refer.getCatIds() == [1] and refer.loadCats(1) == ["thing"]
    assert refer.getRefBox(3) == [30, 10, 20, 10]
    assert refer.sentToRef[11]["ref_id"] == 1
    assert refer.sentToTokens[10] == ["the", "left", "thing"]
    assert [r["ref_id"] for r in refer.imgToRefs[1]] == [1, 2]
    assert refer.refToAnn[2]["id"] == 2 and refer.annToRef[3]["ref_id"] == 3
    assert len(refer.catToRefs[1]) == 3 and len(refer.imgToAnns[1]) == 2
    assert refer.loadImgs(2)[0]["file_name"].endswith("000000000002.jpg")
    with pytest.raises(DataFormatError, match="no such split"):
        refer.getRefIds(split="tset")


def test_dataset_modes_over_refs(polygons_root):
    ev = build_dataset("refcoco", polygons_root, "train", "eval")
    assert len(ev) == 3  # one sample per sentence
    assert [s["sentence"] for s in ev] == ["The Left Thing", "the wide one", "both boxes"]
    assert [s["meta"]["sent_id"] for s in ev] == [10, 11, 12]
    s = ev[0]
    assert s["image"].shape == (3, H, W) and s["mask"].shape == (H, W)
    assert s["meta"] == {
        "dataset": "refcoco",
        "image_id": 1,
        "ref_id": 1,
        "ann_id": 1,
        "split": "train",
        "sent_id": 10,
    }
    assert (
        s["input_ids"].shape == (20,) and s["attention_mask"].sum() == 5
    )  # cls the left thing sep
    tr = build_dataset("refcoco", polygons_root, "train", "train", crop_size=64, base_size=48)
    assert len(tr) == 1
    seen = {tr[0]["sentence"] for _ in range(40)}
    assert seen == {"The Left Thing", "the wide one", "both boxes"}
    assert len(build_dataset("refcoco", polygons_root, "testB", "eval")) == 1


def test_malicious_refs_pickle_runs_nothing(tmp_path):
    victim = tmp_path / "created"

    class Evil:
        def __reduce__(self):
            return (open, (str(victim), "w"))

    write_refcoco(tmp_path, [], [])
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([Evil()], protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p.*io\.open"):
        REFER(tmp_path)
    assert not victim.exists()


def test_missing_files_name_the_layout(tmp_path):
    with pytest.raises(
        DataFormatError, match=r"refs\(umd\)\.p: file not found .*refcoco is split by unc"
    ):
        REFER(tmp_path, "refcoco", "umd")
    write_refcoco(
        tmp_path,
        [ref(1, 99, 1, "train", ["x"])],
        [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [sq(0, 0, 5, 5)]}],
    )
    with pytest.raises(DataFormatError, match="annotation 99"):
        REFER(tmp_path)


def test_refcocog_umd_and_missing_image(tmp_path):
    write_refcoco(
        tmp_path,
        [ref(1, 1, 1, "val", ["a"])],
        [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [sq(0, 0, 5, 5)]}],
        dataset="refcocog",
        split_by="umd",
    )
    ds = build_dataset("refcocog", tmp_path, "val", "eval")
    assert ds[0]["mask"].sum() == 25
    (tmp_path / "images/mscoco/images/train2014/COCO_train2014_000000000001.jpg").unlink()
    with pytest.raises(DataFormatError, match="000000000001.jpg: image not found"):
        ds[0]
