import filecmp
import pickle

import numpy as np
import pytest
import torch

from refvos.data import REFER, build_dataset, collate
from refvos.data.annotations import load_categorization
from refvos.data.base import DataLoader
from refvos.data.scenes import COLORS, SHAPES, make_video_clip
from refvos.data.synthetic import make_all, make_refcoco


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_all(root, num_images=20, num_videos=5, num_frames=4, image_size=64, seed=3)


def test_refcoco_round_trip(synth):
    refer = REFER(synth["refcoco"], "refcoco", "unc")
    assert len(refer.Imgs) == 20
    assert {r["split"] for r in refer.data["refs"]} == {"train", "val", "testA", "testB"}
    for refs in refer.imgToRefs.values():
        assert 2 <= len(refs) <= 6
        masks = [refer.getMask(r)["mask"].astype(bool) for r in refs]
        for r, m in zip(refs, masks):
            assert m.sum() > 0 and abs(refer.refToAnn[r["ref_id"]]["area"] - m.sum()) < 1
            for s in r["sentences"]:
                words = s["sent"].split()
                assert words[0] == "the" and set(s["categories"]) <= {
                    "appearance",
                    "category",
                    "location",
                }
        # objects do not share pixels; no two objects with the same colour and shape
        assert (np.sum(masks, axis=0) <= 1).all()
    sents = [s["sent"] for r in refer.data["refs"] for s in r["sentences"]]
    assert len(sents) == len(
        set(zip(sents, [r["image_id"] for r in refer.data["refs"] for _ in r["sentences"]]))
    )
    ds = build_dataset("refcoco", synth["refcoco"], "val", "eval")
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and set(s["mask"].unique().tolist()) == {0, 1}
    # the mask's pixels have the colour the expression names
    img = s["image"] * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) + torch.tensor(
        [0.485, 0.456, 0.406]
    ).view(3, 1, 1)
    colour = (img[:, s["mask"] == 1].mean(1) * 255).round()
    named = [c for c in COLORS if c in s["sentence"]]
    if named:
        assert torch.allclose(colour, torch.tensor(COLORS[named[0]], dtype=torch.float), atol=12)


def test_color_shape_expression_is_unique(synth):
    refer = REFER(synth["refcoco"])
    for refs in refer.imgToRefs.values():
        kinds = []
        for r in refs:
            cs = [
                s["sent"]
                for s in r["sentences"]
                if len(s["sent"].split()) == 3
                and s["sent"].split()[1] in COLORS
                and s["sent"].split()[2] in SHAPES
            ]
            kinds.extend(cs)
        assert len(kinds) == len(set(kinds))


def test_deterministic_for_a_seed(tmp_path):
    a = make_refcoco(tmp_path / "a", num_images=3, image_size=48, seed=7)
    b = make_refcoco(tmp_path / "b", num_images=3, image_size=48, seed=7)
    c = make_refcoco(tmp_path / "c", num_images=3, image_size=48, seed=8)
    ra, rb, rc = (pickle.loads((x / "refcoco" / "refs(unc).p").read_bytes()) for x in (a, b, c))
    assert ra == rb and ra != rc
    img = "images/mscoco/images/train2014/COCO_train2014_000000000002.png"
    assert filecmp.cmp(a / img, b / img, shallow=False)


def test_video_layouts_round_trip(synth):
    davis = build_dataset(
        "davis", synth["davis"], "val", "eval", annotator="both", kind="full_video"
    )
    assert len(davis) > 0 and all(s["meta"]["video"] == "synth-004" for s in davis)
    assert any(
        "moving" in s["sentence"]
        or "stop" in s["sentence"]
        or "move" in s["sentence"]
        or "still" in s["sentence"]
        for s in davis
    )
    assert sum(s["mask"].sum().item() for s in davis) > 0
    a2d = build_dataset("a2d", synth["a2d"], "train", "eval")
    assert len(a2d) > 0 and all((s["mask"].sum() > 0) == s["meta"]["present"] for s in a2d)
    assert any(not s["meta"]["present"] for s in a2d)  # an instance absent from one annotated frame
    assert any("," in s["sentence"] for s in a2d)
    assert len(build_dataset("a2d", synth["a2d"], "test", "eval")) > 0
    recs = load_categorization(synth["a2d"] / "RE_categorization.csv")
    assert {r.video for r in recs} == {s["meta"]["video"] for s in a2d} | {
        s["meta"]["video"] for s in build_dataset("a2d", synth["a2d"], "test", "eval")
    }
    assert all(r.categories["motion"] or r.categories["static"] for r in recs)


def test_video_clip():
    frames, masks, expr = make_video_clip(num_frames=5, size=64, seed=1)
    assert len(frames) == len(masks) == 5
    assert frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    assert masks[0].dtype == bool and all(m.any() for m in masks)
    assert not np.array_equal(masks[0], masks[-1])  # the target moves
    assert isinstance(expr, str) and expr.startswith("the ")
    f2, m2, e2 = make_video_clip(num_frames=5, size=64, seed=1)
    assert e2 == expr and all(np.array_equal(x, y) for x, y in zip(frames, f2))


def _epoch(ds, seed, workers):
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        ds, batch_size=4, shuffle=True, num_workers=workers, collate_fn=collate, generator=g
    )
    return [(b["sentence"], b["image"].sum().item(), b["mask"]) for b in loader]


def test_dataloader_workers_reproducible(synth):
    ds = build_dataset("refcoco", synth["refcoco"], "train", "train", base_size=56, crop_size=64)
    a = _epoch(ds, 0, 2)
    b = _epoch(ds, 0, 2)
    assert len(a) == (len(ds) + 3) // 4
    assert [x[0] for x in a] == [x[0] for x in b]
    assert all(torch.equal(x[2], y[2]) for x, y in zip(a, b))
    c = _epoch(ds, 1, 2)
    assert [x[0] for x in a] != [x[0] for x in c]
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate)))
    assert batch["image"].shape == (3, 3, 64, 64) and batch["mask"].dtype == torch.long
    assert batch["input_ids"].shape == (3, 20) and isinstance(batch["meta"], list)
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 255}
