"""refvos.data.a2d: A2D-Sentences' annotation CSV, videoset, instance masks and samples."""

import csv
import logging

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from refvos.data import build_dataset
from refvos.data.a2d import read_queries
from refvos.errors import DataFormatError, InputError

FH, FW = 24, 32  # non-square, so a missing transpose would fail


def write_a2d(root):
    (root / "a2d_annotation.txt").write_text(
        "video_id,instance_id,query\n"
        'vidA,0,"man in red, running left"\n'
        "vidA,1,a dog, jumping\n"  # unquoted commas stay part of the query
        "vidB,0,a bird flying\n"
    )
    with open(root / "videoset.csv", "w", newline="") as f:
        csv.writer(f).writerows([["vidA", "x", "1", "2", "0"], ["vidB", "y", "1", "2", "1"]])
    for video, frames in (("vidA", ["00001", "00004"]), ("vidB", ["00002"])):
        for d in ("pngs320H", "Annotations/col", "a2d_annotation_with_instances"):
            (root / d / video).mkdir(parents=True, exist_ok=True)
        for k, fr in enumerate(frames):
            Image.fromarray(np.full((FH, FW, 3), 50 * k, np.uint8)).save(
                root / "pngs320H" / video / f"{fr}.png"
            )
            Image.fromarray(np.zeros((FH, FW), np.uint8)).save(
                root / "Annotations/col" / video / f"{fr}.png"
            )
    m0 = np.zeros((FH, FW), np.uint8)
    m0[2:6, 20:30] = 1
    m1 = np.zeros((FH, FW), np.uint8)
    m1[10:20, 0:4] = 1
    with h5py.File(root / "a2d_annotation_with_instances/vidA/00001.h5", "w") as f:
        f["instance"] = np.array([[0.0], [1.0]])
        f["reMask"] = np.stack([m0.T, m1.T])
    with h5py.File(root / "a2d_annotation_with_instances/vidA/00004.h5", "w") as f:
        f["instance"] = np.array([1.0])
        f["reMask"] = m1.T  # a single instance: one 2-D mask
    with h5py.File(root / "a2d_annotation_with_instances/vidB/00002.h5", "w") as f:
        f["instance"] = np.array([0.0])
        f["reMask"] = m0.T
    return m0, m1


def test_a2d_samples_masks_and_queries(tmp_path):
    m0, m1 = write_a2d(tmp_path)
    ds = build_dataset("a2d", tmp_path, "train", "eval")
    got = [
        (s["meta"]["frame"], s["meta"]["object_id"], s["sentence"], s["meta"]["present"])
        for s in ds
    ]
    # Every annotated frame for every instance of the video, as the original: instance 0 is not
    # in 00004.h5, so that sample has an all-zero mask (trained on; IoU 0 under RefVOS's protocol).
    assert got == [
        ("00001", 0, "man in red, running left", True),
        ("00001", 1, "a dog, jumping", True),
        ("00004", 0, "man in red, running left", False),
        ("00004", 1, "a dog, jumping", True),
    ]
    assert np.array_equal(ds[0]["mask"].numpy(), m0) and np.array_equal(ds[3]["mask"].numpy(), m1)
    assert ds[2]["mask"].shape == (FH, FW) and ds[2]["mask"].eq(0).all()
    train = build_dataset("a2d", tmp_path, "train", "train", base_size=16, crop_size=16)
    assert len(train) == 4 and sum(not t.meta["present"] for t in train.targets) == 1
    assert ds[0]["input_ids"].shape == (10,) and ds[0]["meta"]["video"] == "vidA"
    test = build_dataset("a2d", tmp_path, "test", "eval")
    assert [s["meta"]["video"] for s in test] == ["vidB"]


def test_a2d_query_rule_original_cuts_at_the_first_comma_as_the_authors_split(tmp_path):
    """The authors' reader: ``l.split(',')[2]`` of each line, so a query is cut at its first
    comma and a CSV-quoted one keeps its opening quote; ``full`` keeps the annotated query."""
    write_a2d(tmp_path)
    path = tmp_path / "a2d_annotation.txt"
    full = read_queries(path)
    original = read_queries(path, "original")
    assert full == {
        ("vidA", 0): [("man in red, running left",) * 2],
        ("vidA", 1): [("a dog, jumping",) * 2],
        ("vidB", 0): [("a bird flying",) * 2],
    }
    assert original == {
        ("vidA", 0): [('"man in red', "man in red, running left")],
        ("vidA", 1): [("a dog", "a dog, jumping")],
        ("vidB", 0): [("a bird flying", "a bird flying")],
    }
    # what the authors' code reads from the same lines
    authors = {
        tuple(w[:2]): w[2].split("\n")[0]
        for w in (line.split(",") for line in path.read_text().splitlines(True))
        if len(w) > 1 and len(w[1]) < 3
    }
    assert {(v, str(i)): [q for q, _ in qs] for (v, i), qs in original.items()} == {
        k: [v] for k, v in authors.items()
    }


def test_a2d_query_rule_through_the_dataset(tmp_path):
    write_a2d(tmp_path)
    full = build_dataset("a2d", tmp_path, "train", "eval")
    cut = build_dataset("a2d", tmp_path, "train", "eval", query_rule="original")
    assert [s["sentence"] for s in cut] == ['"man in red', "a dog"] * 2
    # the annotated query stays in the meta (the categorisation matches on it)
    assert [s["meta"]["full_query"] for s in cut] == [s["sentence"] for s in full]
    assert all("full_query" not in s["meta"] for s in full)
    assert not torch.equal(cut[1]["input_ids"], full[1]["input_ids"])
    untouched = build_dataset("a2d", tmp_path, "test", "eval", query_rule="original")
    assert [(s["sentence"], "full_query" in s["meta"]) for s in untouched] == [
        ("a bird flying", False)
    ]
    with pytest.raises(InputError, match="A2D query rule must be one of"):
        build_dataset("a2d", tmp_path, "train", "eval", query_rule="first")


def test_a2d_query_rule_original_reads_each_rows_own_line(tmp_path):
    """A quoted query over two lines, CRLF line ends: the cut of every row comes from its first line."""
    write_a2d(tmp_path)
    path = tmp_path / "a2d_annotation.txt"
    path.write_bytes(
        b'video_id,instance_id,query\r\nvidA,0,"two\r\nlines, here"\r\nvidA,1,a dog, jumping\r\n'
        b"vidB,0,a bird\r\n"
    )
    assert read_queries(path) == {
        ("vidA", 0): [("two\r\nlines, here",) * 2],
        ("vidA", 1): [("a dog, jumping",) * 2],
        ("vidB", 0): [("a bird",) * 2],
    }
    assert read_queries(path, "original") == {
        ("vidA", 0): [('"two', "two\r\nlines, here")],
        ("vidA", 1): [("a dog", "a dog, jumping")],
        ("vidB", 0): [("a bird", "a bird")],
    }
    path.write_text('video_id,instance_id,query\nvidA,0,a dog\nvidA,"1\n",a cat\n')
    with pytest.raises(
        DataFormatError, match=r"a2d_annotation.txt:3: no third comma-separated piece"
    ):
        read_queries(path, "original")
    assert read_queries(path)[("vidA", 1)] == [("a cat", "a cat")]


def test_a2d_known_copy_row_is_skipped_once_in_the_log(tmp_path, caplog):
    """The published file's one mistake (video T6bNPuKV-wY, instance id '1 (copy)') is dropped."""
    write_a2d(tmp_path)
    with open(tmp_path / "a2d_annotation.txt", "a") as f:
        f.write("vidA,1 (copy),a dog, jumping\n")
    with caplog.at_level(logging.INFO, logger="refvos.data.a2d"):
        ds = build_dataset("a2d", tmp_path, "train", "eval")
        build_dataset("a2d", tmp_path, "test", "eval")  # the same file again: no second message
    assert [s["meta"]["object_id"] for s in ds] == [0, 1, 0, 1]
    messages = [r.getMessage() for r in caplog.records if "1 (copy)" in r.getMessage()]
    assert len(messages) == 1 and "vidA (line 5)" in messages[0]


@pytest.mark.parametrize(
    "row", ["vidA,1 (copie),a dog\n", "vidA,x,a dog\n", "vidA,1\n", "vidA,2,\n"]
)
def test_a2d_malformed_row_is_a_clear_error(tmp_path, row):
    write_a2d(tmp_path)
    with open(tmp_path / "a2d_annotation.txt", "a") as f:
        f.write(row)
    with pytest.raises(
        DataFormatError, match=r"a2d_annotation.txt:5: expected 'video_id,instance_id,query'"
    ):
        build_dataset("a2d", tmp_path, "train", "eval")


def test_a2d_queries_file_swaps_queries(tmp_path):
    write_a2d(tmp_path)
    aug = tmp_path / "aug.txt"
    aug.write_text("video_id,instance_id,query\nvidA;1;the dog, with a collar\n")
    ds = build_dataset("a2d", tmp_path, "train", "eval", queries_file=aug)
    assert [s["sentence"] for s in ds] == ["the dog, with a collar"] * 2


def test_a2d_missing_frame_and_h5(tmp_path):
    write_a2d(tmp_path)
    (tmp_path / "pngs320H/vidA/00004.png").unlink()
    with pytest.raises(
        DataFormatError, match=r"pngs320H/vidA/00004.png: frame not found.*Release/"
    ):
        build_dataset("a2d", tmp_path, "train", "eval")
    write_a2d(tmp_path)
    (tmp_path / "a2d_annotation_with_instances/vidA/00001.h5").unlink()
    with pytest.raises(DataFormatError, match=r"vidA/00001.h5: mask file not found"):
        build_dataset("a2d", tmp_path, "train", "train")
    write_a2d(tmp_path)
    (tmp_path / "videoset.csv").write_text("vidA,x,1,2,7\n")
    with pytest.raises(DataFormatError, match=r"videoset.csv:1: expected"):
        build_dataset("a2d", tmp_path, "train", "eval")


def test_a2d_repeated_rows_all_or_the_authors_last(tmp_path):
    """A (video, instance) pair on two rows: refvos keeps both queries (two samples per frame in
    eval mode); ``repeated_rows="last"`` keeps only the second row's, as the authors' dict
    ``annotations_ref[video][instance] = query`` does (issue 21, item 6)."""
    write_a2d(tmp_path)
    with open(tmp_path / "a2d_annotation.txt", "a") as f:
        f.write("vidB,0,a bird landing\n")
    every = build_dataset("a2d", tmp_path, "test", "eval")
    assert [s["sentence"] for s in every] == ["a bird flying", "a bird landing"]
    last = build_dataset("a2d", tmp_path, "test", "eval", repeated_rows="last")
    assert [s["sentence"] for s in last] == ["a bird landing"] and last[0]["meta"]["sent_id"] == 0
    with pytest.raises(InputError, match="repeated_rows"):
        build_dataset("a2d", tmp_path, "test", "eval", repeated_rows="first")
