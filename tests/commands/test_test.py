"""``refvos test`` end to end on the synthetic RefCOCO, DAVIS and A2D layouts (in-process)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import refvos.checkpoint
from refvos.cli import main
from refvos.data.build import build_dataset
from refvos.data.davis import read_object_ids
from tests.helpers import TableModel

IOU_KEYS = {
    "overall_iou",
    "mean_iou",
    "precision@0.5",
    "precision@0.6",
    "precision@0.7",
    "precision@0.8",
    "precision@0.9",
    "num_samples",
    "cum_intersection",
    "cum_union",
}


@pytest.fixture(scope="module")
def roots(tiny_synthetic, tiny_checkpoint):
    """The synthetic data sets (``refcoco``, ``davis``, ``a2d``) and the tiny checkpoint (``ckpt``)."""
    return {"ckpt": tiny_checkpoint, **tiny_synthetic}


def _oracle(monkeypatch, dataset):
    model = TableModel(dataset)
    monkeypatch.setattr(refvos.checkpoint, "model_from_checkpoint", lambda *a, **k: model)


def test_refcoco_seed_command_line(roots, tmp_path, capsys):
    out, mj = tmp_path / "out", tmp_path / "m" / "metrics.json"
    rc = main(
        [
            "test",
            "--dataset",
            "refcoco",
            "--resume",
            str(roots["ckpt"]),
            "--split",
            "val",
            "--display",
            "--refer_data_root",
            str(roots["refcoco"]),
            "--output-dir",
            str(out),
            "--metrics-json",
            str(mj),
            "--device",
            "cpu",
            "--display-limit",
            "4",
        ]
    )
    assert rc == 0
    m = json.loads(mj.read_text())
    assert json.loads((out / "metrics.json").read_text()) == m
    assert m["dataset"] == "refcoco" and set(m["refvos"]) == IOU_KEYS
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == m["num_samples"] > 4
    assert m["refvos"]["cum_union"] == sum(r["union"] for r in rows)
    assert m["refvos"]["mean_iou"] == pytest.approx(np.mean([r["iou"] for r in rows]))
    pngs = sorted((out / "display").glob("*.png"))
    assert len(pngs) == 4 and pngs[0].name.startswith("000000_img")
    with Image.open(pngs[0]) as im:
        assert im.width == 48 and im.height > 48  # the expression band below the picture
    captured = capsys.readouterr()
    table = captured.out
    assert "overall IoU" in table and "precision@0.9" in table
    # the console shows the numbers of metrics.json, in the same units (fractions)
    assert f"overall IoU{m['refvos']['overall_iou']:>23.4f}" in table
    # what was evaluated, and where the outputs went
    assert m["run"] == {
        "dataset": "refcoco",
        "split": "val",
        "checkpoint": str(roots["ckpt"]),
        "precision": "fp32",
        "backend": "auto",
        "device": "cpu",
        "num_samples": m["num_samples"],
        "output_dir": str(out),
        "samples": str(out / "samples.jsonl"),
        "display_dir": str(out / "display"),
        "submission_dir": None,
        "truncation": {
            "token_limit": 20,
            "distinct_expressions": m["run"]["truncation"]["distinct_expressions"],
            "over_token_limit": 0,
            "examples": [],
        },
        "recipe": "refvos",
        "rules": {"truncation": "standard", "tf32": "default", "refcoco_mask": "union"},
    }
    assert m["run"]["truncation"]["distinct_expressions"] > 1
    assert f"/{m['num_samples']}" in captured.err  # the progress bar, on by default


def test_davis_perfect_model_submission_and_categories(roots, tmp_path, monkeypatch):
    root = roots["davis"]
    ds = torch.utils.data.ConcatDataset(
        [
            build_dataset("davis", root, "val", mode="eval", annotator="both", kind=k)
            for k in ("first_frame", "full_video")
        ]
    )
    _oracle(monkeypatch, ds)
    out, sub = tmp_path / "out", tmp_path / "sub"
    csv = root / "davis_text_annotations" / "RE_categorization.csv"
    rc = main(
        [
            "test",
            "--dataset",
            "davis",
            "--resume",
            str(roots["ckpt"]),
            "--davis_root",
            str(root),
            "--output-dir",
            str(out),
            "--submission",
            str(sub),
            "--categories",
            str(csv),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    d = m["davis"]
    for kind in ("first_frame", "full_video"):
        s = d["summary"][kind]
        assert {a: v["J&F"] for a, v in s["per_annotator"].items()} == {"1": 1.0, "2": 1.0}
        assert d["iou_by_kind"][kind]["overall_iou"] == 1.0
    video = (root / "DAVIS" / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    gt = root / "DAVIS" / "Annotations" / "480p" / video
    for folder in (
        "annotator1_first_frame",
        "annotator1_full_video",
        "annotator2_first_frame",
        "annotator2_full_video",
    ):
        for p in sorted(gt.glob("*.png")):
            np.testing.assert_array_equal(
                read_object_ids(sub / folder / video / p.name), read_object_ids(p)
            )
    cats = json.loads((out / "categories.json").read_text())
    assert cats == m["categories"]
    # annotator 1's full-video expressions are categorised, the others are not
    assert cats["categorised"]["num_samples"] == m["num_samples"] // 4
    assert cats["categorised"]["overall_iou"] == 1.0
    assert (
        cats["categories"]["motion"]["with"]["num_samples"]
        + cats["categories"]["motion"]["without"]["num_samples"]
        == cats["categorised"]["num_samples"]
    )
    with Image.open(out / "categories.png") as im:
        assert im.format == "PNG" and "Description" in im.info


def test_davis_one_annotator_one_kind_all_frames(roots, tmp_path, monkeypatch):
    _oracle(
        monkeypatch, build_dataset("davis", roots["davis"], "val", mode="eval", kind="full_video")
    )
    out = tmp_path / "out"
    rc = main(
        [
            "test",
            "--dataset",
            "davis",
            "--resume",
            str(roots["ckpt"]),
            "--davis_root",
            str(roots["davis"]),
            "--output-dir",
            str(out),
            "--annotator",
            "1",
            "--expressions",
            "full_video",
            "--davis-frames",
            "all",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    d = json.loads((out / "metrics.json").read_text())["davis"]
    assert list(d["summary"]) == ["full_video"]
    assert list(d["summary"]["full_video"]["per_annotator"]) == ["1"]
    assert d["frames"] == "all" and all(o["num_frames"] == 4 for o in d["per_object"])


def test_a2d_perfect_model(roots, tmp_path, monkeypatch, capsys):
    _oracle(monkeypatch, build_dataset("a2d", roots["a2d"], "test", mode="eval"))
    out = tmp_path / "out"
    rc = main(
        [
            "test",
            "--dataset",
            "a2d",
            "--resume",
            str(roots["ckpt"]),
            "--a2d_root",
            str(roots["a2d"]),
            "--output-dir",
            str(out),
            "--categories",
            str(roots["a2d"] / "RE_categorization.csv"),
            "--device",
            "cpu",
            "--batch-size",
            "3",
            "--metrics-json",
            str(tmp_path / "m.json"),
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert json.loads((tmp_path / "m.json").read_text()) == m
    # both protocols: RefVOS's keeps the frames where the instance is absent (IoU 0 for the
    # oracle's empty prediction there), MTTR's leaves them out
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    absent = [r for r in rows if not r["present"]]
    assert absent and all(r["gt_area"] == 0 and r["iou"] == 0.0 for r in absent)
    assert m["refvos"]["num_samples"] == len(rows) and m["mttr"]["num_samples"] == len(rows) - len(
        absent
    )
    assert m["refvos"]["mean_iou"] == pytest.approx(1 - len(absent) / len(rows))
    assert set(m["mttr"]) == IOU_KEYS and m["mttr"]["precision@0.9"] == 1.0
    assert m["a2d_map"]["mAP"] == pytest.approx(1.0)
    table = capsys.readouterr().out
    assert f"a2d: RefVOS protocol ({len(rows)} samples)" in table
    assert (
        f"MTTR protocol (frames without the referred instance left out) ({len(rows) - len(absent)} samples)"
        in table
    )
    assert {"mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"} <= set(m["a2d_map"])
    assert m["categories"]["all"]["num_samples"] == m["num_samples"]
    assert (out / "categories.png").is_file()


def test_a2d_protocol_refvos_reads_queries_as_the_authors(roots, tmp_path, monkeypatch, capsys):
    """--protocol refvos cuts A2D queries at their first comma (the authors' reader, which the
    paper's numbers went through); the run records the rule; categories match the annotated query."""
    out = tmp_path / "out"
    base = [
        "test",
        "--dataset",
        "a2d",
        "--resume",
        str(roots["ckpt"]),
        "--a2d_root",
        str(roots["a2d"]),
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--protocol",
        "refvos",
        "--categories",
        str(roots["a2d"] / "RE_categorization.csv"),
    ]
    # the oracle knows the cut queries only: a run on whole queries would fail
    _oracle(
        monkeypatch, build_dataset("a2d", roots["a2d"], "test", mode="eval", query_rule="original")
    )
    assert main(base) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["run"]["a2d_query"] == "original" and m["run"]["a2d_queries_cut"] == 1
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    cut = [r for r in rows if "full_query" in r]
    assert cut and all(r["sentence"] == '"' + r["full_query"].split(",")[0] for r in cut)
    assert (
        "note: 1 A2D queries are cut at their first comma (--a2d-query original"
        in capsys.readouterr().err
    )
    assert m["categories"]["uncategorised"]["num_samples"] == 0 and m["refvos"][
        "num_samples"
    ] == len(rows)

    _oracle(monkeypatch, build_dataset("a2d", roots["a2d"], "test", mode="eval"))
    assert main([*base, "--a2d-query", "full"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["run"]["a2d_query"] == "full" and m["run"]["a2d_queries_cut"] == 0
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert any("," in r["sentence"] for r in rows) and not any("full_query" in r for r in rows)


def test_davis_protocol_refvos_is_annotator_1_first_frame(roots, tmp_path, monkeypatch, capsys):
    _oracle(
        monkeypatch,
        build_dataset("davis", roots["davis"], "val", mode="eval", annotator=1, kind="first_frame"),
    )
    out = tmp_path / "out"
    base = [
        "test",
        "--dataset",
        "davis",
        "--resume",
        str(roots["ckpt"]),
        "--davis_root",
        str(roots["davis"]),
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--protocol",
        "refvos",
    ]
    assert main(base) == 0
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert rows and {(r["annotator"], r["kind"]) for r in rows} == {(1, "first_frame")}
    m = json.loads((out / "metrics.json").read_text())
    assert m["refvos"]["mean_iou"] == 1.0 and list(m["davis"]["summary"]) == ["first_frame"]
    capsys.readouterr()  # the run's progress bar
    assert main([*base, "--annotator", "2"]) == 2
    err = capsys.readouterr().err
    assert "--protocol refvos evaluates --annotator 1" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "--expressions", "both"]) == 2
    assert "one expression kind" in capsys.readouterr().err
    # the paper's full-video column: annotator 1's full-video expressions
    _oracle(
        monkeypatch,
        build_dataset("davis", roots["davis"], "val", mode="eval", annotator=1, kind="full_video"),
    )
    assert main([*base, "--expressions", "full_video"]) == 0
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert {(r["annotator"], r["kind"]) for r in rows} == {(1, "full_video")}


@pytest.mark.parametrize(
    "truncation, legacy", [(None, False), ("original", True), ("standard", False)]
)
def test_truncation_flag_reaches_the_test_set(roots, tmp_path, monkeypatch, truncation, legacy):
    import refvos.commands.test as test_command

    seen = []
    build = test_command.build_test_dataset
    monkeypatch.setattr(
        test_command,
        "build_test_dataset",
        lambda args, legacy_truncation=False: (
            seen.append(legacy_truncation) or build(args, legacy_truncation)
        ),
    )
    extra = [] if truncation is None else ["--truncation", truncation]
    assert (
        main(
            [
                "test",
                "--dataset",
                "refcoco",
                "--resume",
                str(roots["ckpt"]),
                "--refer_data_root",
                str(roots["refcoco"]),
                "--output-dir",
                str(tmp_path),
                "--device",
                "cpu",
                *extra,
            ]
        )
        == 0
    )
    assert seen == [legacy]  # the tiny checkpoint records standard truncation


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--resume", "missing.pth"], "missing.pth"),
        (["--refer_data_root", "no/such/root"], "no/such/root"),
        (["--submission", "sub"], "--dataset davis"),
        (["--categories", "nope.csv"], "nope.csv"),
        (
            ["--a2d-query", "original"],
            "--a2d-query applies to A2D-Sentences (--dataset a2d), not refcoco",
        ),
    ],
)
def test_user_errors(roots, tmp_path, capsys, extra, message):
    base = {
        "--resume": str(roots["ckpt"]),
        "--refer_data_root": str(roots["refcoco"]),
        "--output-dir": str(tmp_path / "out"),
    }
    args = dict(base)
    for flag, value in zip(extra[::2], extra[1::2]):
        args[flag] = value
    rc = main(
        ["test", "--dataset", "refcoco", "--device", "cpu", *[x for kv in args.items() for x in kv]]
    )
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
