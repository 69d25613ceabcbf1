"""Tests of refvos.metrics.categories: per-difficulty / per-category metrics, JSON and chart output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from refvos.data.annotations import CATEGORIES, ExpressionCategory, load_categorization
from refvos.metrics.categories import (
    SampleResult,
    category_analysis,
    plot_category_analysis,
    write_category_analysis,
)
from tests.helpers import shared_dataset_file


def cats(**present):
    return {c: present.get(c.replace("-", "_"), False) for c in CATEGORIES}


RECORDS = [
    ExpressionCategory("v1", 0, "the red car", "Trivial", None, cats(appearance=True)),
    ExpressionCategory(
        "v1",
        1,
        "man walking left",
        "Non-trivial",
        "Redundant Information",
        cats(motion=True, location=True),
    ),
    ExpressionCategory("v2", 0, "a dog", "Incorrect Referring Expression", None, {}),
]
RESULTS = [
    SampleResult("v1", 0, "The  red car ", 8, 10),  # matches despite case / spaces: IoU 0.8
    SampleResult("v1", 0, "the red car", 1, 10),  # a second frame: 0.1
    SampleResult("v1", 1, "man walking left", 6, 10),  # 0.6
    SampleResult("v2", 0, "a dog", 0, 5),  # 0.0
    SampleResult("v1", 1, "another annotator's words", 3, 4),  # no record: uncategorised, 0.75
    SampleResult("v9", 0, None, 0, 0),  # unknown object: uncategorised, 0.0
]


def bucket(overall, mean, prec, n):
    return {
        "overall_iou": pytest.approx(overall) if overall is not None else None,
        "mean_iou": pytest.approx(mean) if mean is not None else None,
        "precision@0.5": pytest.approx(prec) if prec is not None else None,
        "num_samples": n,
    }


def test_category_analysis_hand_case():
    a = category_analysis(RESULTS, RECORDS)
    assert a["all"] == bucket(18 / 39, 2.25 / 6, 3 / 6, 6)
    assert a["uncategorised"] == bucket(3 / 4, 0.375, 0.5, 2)
    assert a["categorised"] == bucket(15 / 35, 1.5 / 4, 2 / 4, 4)
    assert a["difficulty"] == {
        "Trivial": bucket(9 / 20, 0.45, 0.5, 2),
        "Non-trivial": bucket(0.6, 0.6, 1.0, 1),
        "Incorrect Referring Expression": bucket(0.0, 0.0, 0.0, 1),
    }
    assert a["information"] == {
        "Not Applicable": bucket(9 / 25, 0.9 / 3, 1 / 3, 3),
        "Redundant Information": bucket(0.6, 0.6, 1.0, 1),
    }
    assert list(a["categories"]) == list(CATEGORIES)
    c = a["categories"]
    # the record without category annotation (v2) counts on neither side
    assert c["appearance"] == {
        "with": bucket(9 / 20, 0.45, 0.5, 2),
        "without": bucket(0.6, 0.6, 1.0, 1),
    }
    assert c["motion"] == {
        "with": bucket(0.6, 0.6, 1.0, 1),
        "without": bucket(9 / 20, 0.45, 0.5, 2),
    }
    assert c["category"]["with"] == bucket(None, None, None, 0)
    assert c["category"]["without"]["num_samples"] == 3
    assert (a["num_records"], a["num_records_matched"]) == (3, 3)
    json.dumps(a)  # JSON-able


def test_matching_without_expression_and_ambiguity():
    records = [
        ExpressionCategory("v", 1, "left dog", "Trivial", None, cats(location=True)),
        ExpressionCategory("v", 2, "a cat", "Trivial", None, cats()),
        ExpressionCategory("v", 2, "the cat", "Non-trivial", None, cats()),
    ]
    results = [SampleResult("v", 1, None, 1, 1), SampleResult("v", 2, None, 1, 2)]
    a = category_analysis(results, records)
    assert a["categories"]["location"]["with"]["num_samples"] == 1  # unique object record
    assert a["uncategorised"]["num_samples"] == 1  # two records for v/2: not guessed
    assert a["num_records_matched"] == 1
    empty = category_analysis([], records)
    assert empty["all"] == bucket(None, None, None, 0)
    assert empty["difficulty"] == {}


def test_write_json_and_plot(tmp_path):
    a = category_analysis(RESULTS, RECORDS)
    json_path = tmp_path / "out" / "categories.json"
    write_category_analysis(a, json_path)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(a))

    png = tmp_path / "out" / "categories.png"
    plot_category_analysis(a, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in png.parent.iterdir()} == {"categories.json", "categories.png"}
    with Image.open(png) as im:
        im.load()
        bars = json.loads(im.text["Description"])
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape[0] > 200 and rgb.shape[1] > 400
    labels = [(p, label) for p, label, *_ in bars]
    assert labels[:5] == [
        ("difficulty", "all"),
        ("difficulty", "Incorrect Referring Expression"),
        ("difficulty", "Non-trivial"),
        ("difficulty", "Trivial"),
        ("difficulty", "uncategorised"),
    ]
    assert len(labels) == 5 + 2 * len(CATEGORIES)
    trivial = bars[3]
    assert trivial[2:] == [pytest.approx(0.45), pytest.approx(0.45), 2]
    assert ["categories", "category (with)", None, None, 0] in bars
    # the bars are drawn: both series' colours (matplotlib tab:blue, tab:orange) cover pixels
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (rgb == colour).all(axis=-1).sum() > 500


@pytest.mark.parametrize("name", ["DAVIS17_RE_categorization.csv", "A2D_RE_categorization.csv"])
def test_real_categorisation_files(name):
    path = shared_dataset_file("RE_categorization", name)
    records = load_categorization(path)
    results = [
        SampleResult(r.video, r.instance_id, r.expression, i % 3, 3) for i, r in enumerate(records)
    ]
    a = category_analysis(results, records)
    assert a["uncategorised"]["num_samples"] == 0
    assert a["num_records_matched"] == len(records)
    assert sum(b["num_samples"] for b in a["difficulty"].values()) == len(records)
    annotated = sum(bool(r.categories) for r in records)
    for sides in a["categories"].values():
        assert sides["with"]["num_samples"] + sides["without"]["num_samples"] == annotated
