"""refvos.data.davis: DAVIS-2017 sequences, both annotators' expressions and object masks."""

import numpy as np
import pytest
from PIL import Image

from refvos.data import build_dataset
from refvos.errors import DataFormatError

FH, FW = 24, 32  # non-square, so a missing transpose would fail


def write_davis(root, annot2_text):
    seqs = {"bear": 2, "car": 1}
    (root / "DAVIS/ImageSets/2017").mkdir(parents=True)
    (root / "DAVIS/ImageSets/2017/val.txt").write_text("bear\ncar\n")
    (root / "DAVIS/ImageSets/2017/train.txt").write_text("")
    for seq, n in seqs.items():
        (root / "DAVIS/JPEGImages/480p" / seq).mkdir(parents=True)
        (root / "DAVIS/Annotations/480p" / seq).mkdir(parents=True)
        for t in range(2):
            Image.fromarray(np.zeros((FH, FW, 3), np.uint8)).save(
                root / f"DAVIS/JPEGImages/480p/{seq}/{t:05d}.jpg"
            )
            lab = np.zeros((FH, FW), np.uint8)
            for o in range(1, n + 1):
                lab[o * 3 : o * 3 + 2 + t, :5] = o
            p = Image.fromarray(lab, mode="P")
            p.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
            p.save(root / f"DAVIS/Annotations/480p/{seq}/{t:05d}.png")
    d = root / "davis_text_annotations"
    d.mkdir()
    (d / "Davis17_annot1.txt").write_text(
        'bear 1 "a brown bear"\nbear 2 "the bear on the right"\n\ncar 1 "a car"\n'
    )
    (d / "Davis17_annot2.txt").write_bytes(annot2_text.encode("latin-1"))
    (d / "Davis17_annot1_full_video.txt").write_text(
        'bear 1 "a bear walking"\nbear 2 "bear, standing"\ncar 1 "a car driving"\n'
    )


def test_davis_annotators_kinds_and_latin1(tmp_path):
    write_davis(tmp_path, 'bear 1 "un ours brun à gauche"\nbear 2 "x"\ncar 1 "voiture"\n')
    ds = build_dataset("davis", tmp_path, "val", "eval", annotator=2)
    assert len(ds) == 2 * 2 + 2 * 1  # frames x objects x one expression
    assert ds[0]["sentence"] == "un ours brun à gauche" and ds[0]["meta"]["annotator"] == 2
    s = ds[1]
    assert s["meta"]["video"] == "bear" and s["meta"]["object_id"] == 2
    assert s["mask"].sum() == 2 * 5 and set(s["mask"].unique().tolist()) == {0, 1}
    both = build_dataset("davis", tmp_path, "val", "eval", annotator="both")
    assert len(both) == 12 and {s["meta"]["annotator"] for s in both} == {1, 2}
    full = build_dataset("davis", tmp_path, "val", "eval", kind="full_video")
    assert full[1]["sentence"] == "bear, standing" and full[1]["meta"]["kind"] == "full_video"
    train = build_dataset(
        "davis", tmp_path, "val", "train", annotator="both", crop_size=40, base_size=32
    )
    assert len(train) == 6 and train[0]["image"].shape == (3, 40, 40)
    with pytest.raises(DataFormatError, match="Davis17_annot2_full_video.txt: file not found"):
        build_dataset("davis", tmp_path, "val", "eval", annotator=2, kind="full_video")


def test_davis_training_draws_from_either_annotators_first_frame_file(tmp_path):
    """As the original: a training sample's expression comes from annotator 1's or 2's
    first-frame file; evaluation defaults to annotator 1 (the paper's setting)."""
    import torch

    write_davis(tmp_path, 'bear 1 "un ours brun"\nbear 2 "l\'autre ours"\ncar 1 "voiture"\n')
    train = build_dataset("davis", tmp_path, "val", "train", crop_size=40, base_size=32)
    assert len(train) == 6  # one sample per (frame, object), as the original
    assert all({s.meta["annotator"] for s in t.sentences} == {1, 2} for t in train.targets)
    assert {t.meta["kind"] for t in train.targets} == {"first_frame"}
    torch.manual_seed(0)
    drawn = {train[0]["sentence"] for _ in range(30)}
    assert drawn == {"a brown bear", "un ours brun"}
    test = build_dataset("davis", tmp_path, "val", "eval")
    assert {s["meta"]["annotator"] for s in test} == {1} and len(test) == 6


def test_davis_malformed_line_and_missing_annotation(tmp_path):
    write_davis(tmp_path, 'bear 1 "ok"\nbear two no quotes\n')
    with pytest.raises(DataFormatError, match=r"Davis17_annot2.txt:2: expected"):
        build_dataset("davis", tmp_path, "val", "eval", annotator=2)
    (tmp_path / "DAVIS/Annotations/480p/car/00001.png").unlink()
    with pytest.raises(DataFormatError, match=r"car/00001.png: annotation not found"):
        build_dataset("davis", tmp_path, "val", "eval")
