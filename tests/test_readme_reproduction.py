"""Every command of the "Reproducing the paper" section of docs/reproducing.md, run as written (from a folder
where the data sit at the default roots) on the built-in synthetic data in each data set's
on-disk layout, with only size flags appended: a tiny network, 48-pixel crops, one epoch. The
rules each checkpoint and metrics.json record (truncation, mask, query, repeated rows, overlap,
precision, selection) must be the paper's."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest

from refvos.checkpoint import read_checkpoint
from refvos.cli import main
from refvos.commands.recipe import RULES, rules_for
from refvos.data import synthetic
from tests.helpers import REPO_ROOT, TINY_MODEL_ARGS

# the paper's selection set per data set (the original's train.py: RefCOCO val, A2D test, DAVIS val)
SELECTION_SPLIT = {"refcoco": "val", "refcoco+": "val", "a2d": "test", "davis": "val"}

SMALL = [
    "--epochs",
    "1",
    "-b",
    "2",
    "--base-size",
    "48",
    "--crop-size",
    "48",
    "--workers",
    "0",
    "--device",
    "cpu",
]


def readme_commands() -> list[list[str]]:
    """The ``refvos ...`` lines of the section's bash blocks, split into arguments."""
    text = (REPO_ROOT / "docs" / "reproducing.md").read_text()
    section = text.split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [
        shlex.split(line)[1:]
        for block in blocks
        for line in block.splitlines()
        if line.startswith("refvos ")
    ]


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_section_has_one_train_and_one_test_command_per_data_set():
    commands = readme_commands()
    pairs = [(argv[0], _flag(argv, "--dataset")) for argv in commands]
    assert sorted(pairs) == sorted(
        (c, d) for d in ("refcoco", "a2d", "davis") for c in ("train", "test")
    )
    assert all(_flag(argv, "--recipe") == "paper" for argv in commands)
    assert all(
        "--protocol" in argv and _flag(argv, "--protocol") == "refvos"
        for argv in commands
        if argv[0] == "test"
    )
    # the checkpoint the original would have reported: the best by validation mean IoU
    assert all(
        _flag(argv, "--resume").endswith("/best.pth") for argv in commands if argv[0] == "test"
    )


@pytest.mark.slow
def test_readme_reproduction_commands_run_on_synthetic_data(tmp_path, monkeypatch):
    refer = synthetic.make_refcoco(tmp_path / "refer" / "data", num_images=20, image_size=48)
    shutil.copytree(refer / "refcoco", refer / "refcoco+")  # RefCOCO+ has the same layout
    synthetic.make_a2d(
        tmp_path / "a2d" / "Release", num_videos=5, num_frames=4, image_size=48, annotated_every=2
    )
    synthetic.make_davis(tmp_path / "davis2017", num_videos=5, num_frames=3, image_size=48)
    monkeypatch.chdir(tmp_path)  # the commands' default data roots and checkpoints/ folder

    commands = readme_commands()
    # RefCOCO+: the same commands with refcoco+ (as the section says), run after RefCOCO's
    renamed = ("--dataset", "--model_id", "--resume")
    plus = [
        [
            a.replace("refcoco", "refcoco+") if i and argv[i - 1] in renamed else a
            for i, a in enumerate(argv)
        ]
        for argv in commands
        if _flag(argv, "--dataset") == "refcoco"
    ]
    for argv in commands[:2] + plus + commands[2:]:
        extra = SMALL if argv[0] == "train" else ["--device", "cpu"]
        if argv[0] == "train" and "--pretrained_refvos" not in argv:
            extra = [*extra, *TINY_MODEL_ARGS]
        assert main([*argv, *extra]) == 0, argv
        dataset = _flag(argv, "--dataset")
        paper = {k: RULES[k]["paper"] for k in rules_for(dataset, argv[0])}
        if argv[0] == "train":
            ckpt = read_checkpoint(f"checkpoints/{_flag(argv, '--model_id')}/last.pth")
            best = read_checkpoint(f"checkpoints/{_flag(argv, '--model_id')}/best.pth")
            assert ckpt["config"]["truncation"] == best["config"]["truncation"] == "original"
            assert ckpt["lr_scheduler"]["name"] == _flag(argv, "--schedule")
            args = best["args"]
            assert (
                args["rules"] == paper and args["recipe"] == "paper"
            )  # truncation, mask, query, rows...
            assert args["precision"] == "fp32" and args["rules"]["tf32"] == "off"
            assert args["selection"] == {
                "rule": "paper",
                "metric": "mean_iou",
                "split": SELECTION_SPLIT[dataset],
                "size": 520,
                "sentences": "one drawn per target",
            }
            assert best["best"]["metric"] == "mean_iou"
            assert args["a2d_query"] == ("original" if dataset == "a2d" else None)
            continue
        metrics = json.loads((tmp_path / "output" / "test" / "metrics.json").read_text())
        assert metrics["dataset"] == dataset and metrics["refvos"]["num_samples"] > 0
        assert metrics["run"]["rules"] == paper and metrics["run"]["recipe"] == "paper"
        assert metrics["run"]["precision"] == "fp32"
        if dataset == "a2d":  # both protocols; MTTR's leaves out the absent-instance frames
            assert 0 < metrics["mttr"]["num_samples"] < metrics["refvos"]["num_samples"]
            # --protocol refvos: queries cut at their first comma (the synthetic data have some)
            assert (
                metrics["run"]["a2d_query"] == "original" and metrics["run"]["a2d_queries_cut"] > 0
            )
        if dataset == "davis":  # annotator 1's first-frame expressions
            assert list(metrics["davis"]["summary"]) == ["first_frame"]
            assert list(metrics["davis"]["summary"]["first_frame"]["per_annotator"]) == ["1"]
