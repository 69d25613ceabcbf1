"""Hostile annotation files: RefCOCO refs / instances.json entries of the wrong type, RLEs that
do not fit their image, A2D ``.h5`` masks of a string type or of a declared size far beyond their
frame (a few kB of gzip that would decode to gigabytes). Each is one DataFormatError line naming
the file, refused from the declared sizes before anything is decoded (peak memory of a fresh
process checked); the same errors raised inside DataLoader workers reach the CLI as that one
line."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from refvos.cli import main
from refvos.data import build_dataset
from refvos.errors import DataFormatError
from tests.helpers import REPO_ROOT, train_argv


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    from refvos.data.synthetic import make_a2d, make_refcoco

    base = tmp_path_factory.mktemp("annotations")
    return {
        "refer": make_refcoco(base / "refer", num_images=4, image_size=48),
        "a2d": make_a2d(base / "a2d", num_videos=2, num_frames=3, image_size=48),
    }


# -- RefCOCO ---------------------------------------------------------------------------------------
def _refer_copy(roots, tmp: Path, refs=None, instances=None) -> Path:
    """A copy of the tiny RefCOCO root with ``refs(list)`` / ``instances(dict)`` applied in place."""
    root = Path(shutil.copytree(roots["refer"], tmp / "refer"))
    refs_file, instances_file = (
        root / "refcoco" / "refs(unc).p",
        root / "refcoco" / "instances.json",
    )
    if refs is not None:
        data = pickle.loads(refs_file.read_bytes())
        refs(data)
        refs_file.write_bytes(pickle.dumps(data, protocol=2))
    if instances is not None:
        data = json.loads(instances_file.read_text())
        instances(data)
        instances_file.write_text(json.dumps(data))
    return root


def _first_train_ref(refs: list) -> dict:
    return next(r for r in refs if r["split"] == "train")


def _set_segmentations(segmentation) -> callable:
    def change(instances: dict) -> None:
        for ann in instances["annotations"]:
            ann["segmentation"] = segmentation

    return change


def _rle(h: int, w: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(np.ones((h, w), np.uint8)))
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


# name -> (refs change, instances change, file named, words, refused when: "index" or "load")
REFCOCO_CASES = {
    "raw sentence is a list": (
        lambda refs: _first_train_ref(refs)["sentences"][0].update(raw=["a", "b"]),
        None,
        r"refs\(unc\)\.p",
        "sentence 'raw' is list",
        "index",
    ),
    "sent is a number": (
        lambda refs: _first_train_ref(refs)["sentences"][0].update(sent=7),
        None,
        r"refs\(unc\)\.p",
        "sentence 'sent' is int",
        "index",
    ),
    "file_name is an int": (
        None,
        lambda ins: ins["images"][0].update(file_name=7),
        r"instances\.json",
        "'file_name' is 7",
        "index",
    ),
    "image claims 40000x40000": (
        None,
        lambda ins: ins["images"][0].update(height=40000, width=40000),
        r"instances\.json",
        "40000x40000",
        "index",
    ),
    "image claims more than its file": (
        None,
        lambda ins: [i.update(height=4000, width=4000) for i in ins["images"]],
        r"instances\.json",
        "declares 4000x4000 but .* is 48x48",
        "load",
    ),
    "RLE counts longer than h*w": (
        None,
        _set_segmentations({"size": [48, 48], "counts": [0, 48 * 48 * 3]}),
        r"instances\.json",
        "bad segmentation",
        "load",
    ),
    "compressed RLE longer than h*w": (
        None,
        _set_segmentations({**_rle(96, 48), "size": [48, 48]}),
        r"instances\.json",
        "bad segmentation",
        "load",
    ),
    "negative RLE size": (
        None,
        _set_segmentations({"size": [-48, 48], "counts": [0, 10]}),
        r"instances\.json",
        "bad segmentation",
        "load",
    ),
    "RLE claims 40000x40000": (
        None,
        _set_segmentations(_rle(40000, 1) | {"size": [40000, 40000]}),
        r"instances\.json",
        "RLE is 40000x40000 but image",
        "load",
    ),
}


@pytest.mark.parametrize("name", list(REFCOCO_CASES))
def test_refcoco_bad_annotation_is_one_line(roots, tmp_path, name):
    refs, instances, file, words, when = REFCOCO_CASES[name]
    root = _refer_copy(roots, tmp_path, refs, instances)
    with pytest.raises(DataFormatError) as e:
        dataset = build_dataset("refcoco", root, "train", "eval")
        assert when == "load", "refused only when a sample is loaded"
        for i in range(len(dataset)):
            dataset[i]
    message = str(e.value)
    assert "\n" not in message and re.search(file, message) and re.search(words, message), message


# -- A2D -------------------------------------------------------------------------------------------
def _a2d_copy(roots, tmp: Path, write) -> tuple[Path, Path]:
    """A copy of the tiny A2D root whose first .h5 gets ``write(h5 file, its instance ids)``."""
    root = Path(shutil.copytree(roots["a2d"], tmp / "a2d"))
    h5 = sorted((root / "a2d_annotation_with_instances").rglob("*.h5"))[0]
    with h5py.File(h5, "r+") as f:
        ids = np.asarray(f["instance"]).reshape(-1)
        del f["reMask"]
        write(f, ids)
    return root, h5


def _big_mask(side_w: int, side_h: int):
    """``reMask`` declared ``(N, W, H)`` of ones, stored as gzip chunks of the fill value only (a
    few kB on disk)."""

    def write(f, ids):
        f.create_dataset(
            "reMask",
            shape=(len(ids), side_w, side_h),
            dtype="uint8",
            chunks=(1, 1000, 1000),
            compression="gzip",
            fillvalue=1,
        )

    return write


A2D_CASES = {
    "string reMask": (
        lambda f, ids: f.create_dataset("reMask", data=np.array([b"x" * 8] * len(ids))),
        "reMask has dtype",
        "index",
    ),
    "30000x30000 gzip reMask": (
        _big_mask(30000, 30000),
        "30000x30000 masks, more than the limit",
        "index",
    ),
    "reMask far larger than its frame": (
        _big_mask(4000, 4000),
        r"4000x4000 masks for a 48x48 frame",
        "load",
    ),
}


@pytest.mark.parametrize("name", list(A2D_CASES))
def test_a2d_bad_mask_is_one_line(roots, tmp_path, name):
    write, words, when = A2D_CASES[name]
    root, h5 = _a2d_copy(roots, tmp_path, write)
    assert h5.stat().st_size < 100_000
    with pytest.raises(DataFormatError) as e:
        dataset = build_dataset("a2d", root, "train", "eval")
        assert when == "load", "refused only when a sample is loaded"
        for i in range(len(dataset)):
            dataset[i]
    message = str(e.value)
    assert "\n" not in message and str(h5) in message and re.search(words, message), message


def test_oversized_annotations_are_refused_before_decoding(roots, tmp_path):
    """In a fresh process, loading every sample of a RefCOCO root whose RLEs claim 40000x40000
    (1.6 GB decoded) and of an A2D root whose 2-kB .h5 declares 30000x30000 masks (0.9 GB) raises
    peak RSS by far less than 1 GB: both are refused from the declared sizes."""
    refer = _refer_copy(
        roots, tmp_path, None, _set_segmentations(_rle(40000, 1) | {"size": [40000, 40000]})
    )
    a2d, h5 = _a2d_copy(roots, tmp_path, _big_mask(30000, 30000))
    script = textwrap.dedent("""
        import json, resource, sys
        from refvos.data import build_dataset
        from refvos.errors import DataFormatError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {}
        for name, root in (("refcoco", sys.argv[1]), ("a2d", sys.argv[2])):
            try:
                dataset = build_dataset(name, root, "train", "eval")
                for i in range(len(dataset)):
                    dataset[i]
                out[name] = "loaded"
            except DataFormatError as e:
                out[name] = str(e)
        out["rise_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(refer), str(a2d)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "40000x40000" in out["refcoco"] and str(h5) in out["a2d"], out
    assert out["rise_kb"] < 256 * 1024, out


# -- DataLoader workers ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["test", "train"])
def test_error_in_a_dataloader_worker_is_the_one_line_error(
    refcoco_root, tmp_path, tiny_checkpoint, capsys, command
):
    """Images that are missing on disk are found only when a worker loads them (-j 1): the CLI
    prints the data set's own one-line error naming the file, not the worker's traceback."""
    root = Path(shutil.copytree(refcoco_root, tmp_path / "refer"))
    refs = pickle.loads((root / "refcoco" / "refs(unc).p").read_bytes())
    images = {
        i["id"]: i["file_name"]
        for i in json.loads((root / "refcoco" / "instances.json").read_text())["images"]
    }
    for image_id in {
        r["image_id"] for r in refs if r["split"] == "train"
    }:  # val's stay: train reads one first
        (root / "images" / "mscoco" / "images" / "train2014" / images[image_id]).unlink()
    if command == "test":
        argv = [
            "test",
            "--dataset",
            "refcoco",
            "--refer_data_root",
            str(root),
            "--split",
            "train",
            "--resume",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "-j",
            "1",
            "--no-progress",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    else:
        argv = [*train_argv(root, tmp_path / "runs", "--epochs", "1"), "--workers", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and "image not found" in err[0], err
    assert re.search(r"COCO_train2014_\d+\.png: image not found", err[0]), err


@pytest.mark.parametrize(
    "name", ["raw sentence is a list", "RLE counts longer than h*w", "string reMask"]
)
def test_cli_test_exits_2_with_one_line(roots, tmp_path, tiny_checkpoint, capsys, name):
    """The same refusals through `refvos test`: status 2, one line naming the file."""
    if name in REFCOCO_CASES:
        refs, instances, file, words, _ = REFCOCO_CASES[name]
        root, flags = (
            _refer_copy(roots, tmp_path, refs, instances),
            ["--dataset", "refcoco", "--refer_data_root"],
        )
    else:
        write, words, _ = A2D_CASES[name]
        (root, h5), flags = _a2d_copy(roots, tmp_path, write), ["--dataset", "a2d", "--a2d_root"]
        file = re.escape(str(h5))
    argv = [
        "test",
        *flags,
        str(root),
        "--split",
        "train",
        "--resume",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--no-progress",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refvos test: error: "), err
    assert re.search(file, err[0]) and re.search(words, err[0]), err
