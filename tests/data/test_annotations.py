from collections import Counter

import pytest

from refvos.data.annotations import (
    CATEGORIES,
    ExpressionCategory,
    load_augmented_expressions,
    load_categorization,
    write_categorization,
)
from refvos.errors import DataFormatError
from tests.helpers import shared_dataset_file


def test_real_a2d_categorization_counts():
    recs = load_categorization(
        shared_dataset_file("RE_categorization", "A2D_RE_categorization.csv")
    )
    assert len(recs) == 1295
    assert len({r.video for r in recs}) == 737
    assert Counter(r.difficulty for r in recs) == {
        "Trivial": 558,
        "Non-trivial": 434,
        "Not a Referring Expression": 148,
        "Trivial (Single Object Category)": 126,
        "Incorrect Referring Expression": 29,
    }
    first = recs[0]
    assert first == ExpressionCategory(
        "-7EE9T3Z0qk",
        0,
        "the child is crawling up onto the sofa",
        "Non-trivial",
        "Redundant Information",
        {
            "appearance": False,
            "obj-static": False,
            "category": True,
            "location": True,
            "motion": True,
            "obj-motion": False,
            "static": False,
        },
    )
    incorrect = next(r for r in recs if r.difficulty == "Incorrect Referring Expression")
    assert incorrect.information is None and incorrect.categories == {}


def test_real_davis_categorization_counts():
    recs = load_categorization(
        shared_dataset_file("RE_categorization", "DAVIS17_RE_categorization.csv")
    )
    assert len(recs) == 61
    assert all(set(r.categories) == set(CATEGORIES) for r in recs)
    assert recs[0].video == "blackswan" and recs[0].instance_id == 1


def test_real_augmented_expressions():
    d = load_augmented_expressions(
        shared_dataset_file("New_REs", "A2D_appearance_new_format_all_non_trivial.txt")
    )
    assert len(d) == 428
    assert d[("XQ2WJo8sLEw", 2)] == "the person in gray is walking"


def test_augmented_duplicates_become_lists_and_bad_rows_fail(tmp_path):
    p = tmp_path / "aug.txt"
    p.write_text("video_id,instance_id,query\nv1;0;a man, running; fast\nv1;0;second\nv2;3;x\n")
    d = load_augmented_expressions(p)
    assert d == {("v1", 0): ["a man, running; fast", "second"], ("v2", 3): "x"}
    p.write_text("video_id,instance_id,query\nv1,0,comma separated\n")
    with pytest.raises(DataFormatError, match=r"aug.txt:2"):
        load_augmented_expressions(p)


def test_categorization_round_trip_and_errors(tmp_path):
    recs = [
        ExpressionCategory(
            "v",
            1,
            "the red circle",
            "Non-trivial",
            "Minimum Information",
            {c: c == "appearance" for c in CATEGORIES},
        ),
        ExpressionCategory("w", 2, "a thing", "Trivial", None, {}),
    ]
    p = tmp_path / "c.csv"
    write_categorization(p, recs)
    assert b"\r\n" in p.read_bytes()
    assert load_categorization(p) == recs
    p.write_bytes(p.read_bytes().replace(b";1.0;", b";yes;", 1))
    with pytest.raises(DataFormatError, match=r"c.csv:2: category 'appearance'"):
        load_categorization(p)
    with pytest.raises(DataFormatError, match="not found"):
        load_categorization(tmp_path / "nope.csv")
