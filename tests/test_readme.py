"""The README's commands: every ``refvos`` line parses, and the blocks marked
``<!-- readme-test: run -->`` run in order against synthetic data (tiny networks stand in for
ResNet-101 + BERT-base, which would need downloads and hours)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvos.cli import main, parse
from tests.helpers import REPO_ROOT, TINY_MODEL_ARGS, TINY_TEXT_CONFIG

MARK = "<!-- readme-test: run -->"
SMALL_RUN = ["--base-size", "48", "--crop-size", "48", "-b", "4", "-j", "0", "--epochs", "1", "--device", "cpu"]


def readme_blocks() -> list[tuple[str, str, bool]]:
    """``(language, code, marked to run)`` of every fenced block of the README, in order."""
    text = (REPO_ROOT / "README.md").read_text()
    blocks = []
    for m in re.finditer(r"(?P<mark><!-- readme-test: run -->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", text, re.S):
        blocks.append((m.group("lang"), m.group("code"), m.group("mark") is not None))
    return blocks


def commands(code: str) -> list[list[str]]:
    """The ``refvos ...`` command lines of a shell block (continuations joined) as argv lists."""
    lines = code.replace("\\\n", " ").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.strip().startswith("refvos ")]


def test_readme_has_the_workflow_commands():
    run = [argv[0] for lang, code, marked in readme_blocks() if marked and lang == "bash" for argv in commands(code)]
    for command in ("make-synthetic", "train", "test", "predict", "pretrain-bert", "export", "export-original"):
        assert command in run, command
    assert any(lang == "python" and marked for lang, _, marked in readme_blocks())


def test_every_refvos_line_of_the_readme_parses():
    lines = [argv for lang, code, _ in readme_blocks() if lang == "bash" for argv in commands(code)]
    assert len(lines) > 15
    for argv in lines:
        args = parse(argv)  # SystemExit / RefVOSError on an unknown or renamed flag
        assert args.command == argv[0]


def _ci_argv(argv: list[str], r101_checkpoint: Path) -> list[str]:
    """A README command as CI runs it: tiny networks, 48-pixel crops, one epoch, the CPU."""
    command, flags = argv[0], argv[1:]
    if command == "train" and "refvos_lite" not in flags:  # the real-data recipes
        network = TINY_MODEL_ARGS[:4] if "--ck_bert" in flags else [] if "--pretrained_refvos" in flags else TINY_MODEL_ARGS
        return argv + network + SMALL_RUN
    if command == "pretrain-bert":
        return argv + ["--bert", "none", "--text-config", json.dumps(TINY_TEXT_CONFIG), "--epochs", "1",
                       "-b", "16", "--device", "cpu"]
    if command in ("test", "predict"):
        return argv + ["--device", "cpu"]
    if command == "export":
        return argv + ["--height", "64", "--width", "64"]
    if command == "export-original":  # the released layout exists for refvos_r101 only
        return [command, "--checkpoint", str(r101_checkpoint), *flags[flags.index("--out"):]]
    return argv


@pytest.mark.slow
def test_readme_workflows_run_on_synthetic_data(tmp_path, monkeypatch, r101_model, capsys):
    from refvos.checkpoint import save_checkpoint
    from refvos.data import synthetic

    monkeypatch.chdir(tmp_path)
    synthetic.make_refcoco(Path("refer/data"), num_images=20, image_size=48)
    synthetic.make_davis(Path("davis2017"), num_videos=5, num_frames=4, image_size=48)
    synthetic.make_a2d(Path("a2d/Release"), num_videos=5, num_frames=4, image_size=48, annotated_every=2)
    first = sorted(Path("refer/data/images").rglob("*.png"))[0]
    Image.open(first).convert("RGB").save("photo.jpg")
    frames = [Image.open(f).convert("RGB") for f in sorted(Path("davis2017").rglob("JPEGImages/480p/*/*.jpg"))[:4]]
    frames[0].save("clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r101 = save_checkpoint(tmp_path / "r101.pth", r101_model)

    for lang, code, marked in readme_blocks():
        if not marked:
            continue
        if lang == "python":
            exec(compile(code, "README.md", "exec"), {})
            continue
        for argv in commands(code):
            argv = _ci_argv(argv, r101)
            assert main(argv) == 0, (argv, capsys.readouterr().err[-2000:])
    # what the blocks promise exists
    assert Path("output/davis/submission").is_dir() and Path("clip_refvos/expr_0/overlay.gif").is_file()
    assert Path("overlay.png").is_file() and Path("refvos.onnx").is_file() and Path("synthetic_overlay.png").is_file()
    assert np.asarray(Image.open("overlay.png")).shape[1] == 48
