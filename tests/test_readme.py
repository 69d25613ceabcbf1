"""The commands of the README and of the docs/ pages it links: every ``refvos`` line parses, and
the blocks marked ``<!-- readme-test: run -->`` run in order, document after document, against
synthetic data (tiny networks stand in for ResNet-101 + BERT-base, which would need downloads and
hours). The quick start's released models by name come from a local mirror
(``REFVOS_WEIGHTS_URL``) holding a tiny ``refvos_r101`` in the authors' released layout, into an
empty cache (``REFVOS_HOME``)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from refvos.cli import main, parse
from tests.helpers import REPO_ROOT, TINY_MODEL_ARGS, TINY_TEXT_CONFIG

MARK = "<!-- readme-test: run -->"
# The documents whose blocks run, in the order they run: the README trains checkpoints/refcoco,
# which the data set and serving pages fine-tune from and predict with.
DOCUMENTS = [
    "README.md",
    "docs/datasets.md",
    "docs/serving.md",
    "docs/reproducing.md",
    "docs/demo.md",
    "docs/security.md",
    "docs/BENCHMARKS.md",
]
SMALL_RUN = [
    "--base-size",
    "48",
    "--crop-size",
    "48",
    "-b",
    "4",
    "-j",
    "0",
    "--epochs",
    "1",
    "--device",
    "cpu",
]


def blocks(document: str) -> list[tuple[str, str, bool]]:
    """``(language, code, marked to run)`` of every fenced block of ``document``, in order."""
    text = (REPO_ROOT / document).read_text()
    found = []
    for m in re.finditer(
        r"(?P<mark><!-- readme-test: run -->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", text, re.S
    ):
        found.append((m.group("lang"), m.group("code"), m.group("mark") is not None))
    return found


def all_blocks() -> list[tuple[str, str, str, bool]]:
    """``(document, language, code, marked)`` of every block of :data:`DOCUMENTS`, in run order."""
    return [(doc, *block) for doc in DOCUMENTS for block in blocks(doc)]


def commands(code: str) -> list[list[str]]:
    """The ``refvos ...`` command lines of a shell block (continuations joined, comments dropped)
    as argv lists."""
    lines = code.replace("\\\n", " ").splitlines()
    return [
        shlex.split(line, comments=True)[1:] for line in lines if line.strip().startswith("refvos ")
    ]


def test_the_documents_are_the_linked_ones():
    readme = (REPO_ROOT / "README.md").read_text()
    for doc in DOCUMENTS[1:]:
        assert f"]({doc})" in readme or f"]({doc}#" in readme, f"README does not link {doc}"
    linked = set(re.findall(r"\]\((docs/[\w.]+\.md)", readme)) - {"docs/ARCHITECTURE.md"}
    assert linked <= set(DOCUMENTS), linked - set(
        DOCUMENTS
    )  # a linked page with commands is run too


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_points_at_a_file_and_heading():
    """Links between the README and docs/ (not pictures) name files and headings that exist."""
    for doc in ["README.md", *DOCUMENTS[1:], "docs/ARCHITECTURE.md"]:
        links = re.findall(
            r"(!?)\[[^\]]*\]\((?!https?:)([^)#\s]*)(?:#([^)\s]+))?\)", (REPO_ROOT / doc).read_text()
        )
        for image, target, anchor in links:
            if (
                image
            ):  # pictures: docs/images/demo_video.gif is made by `make demo` and added by hand
                continue
            path = (REPO_ROOT / doc).parent / target if target else REPO_ROOT / doc
            assert path.exists(), f"{doc}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M)
                assert anchor in {_slug(h) for h in headings}, f"{doc}: {target}#{anchor}"


def _resolves(dotted: str) -> bool:
    """``refvos.a.b`` names a module, or an attribute of the longest module prefix."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def test_the_files_and_modules_the_documents_name_exist():
    """A moved test, script or module leaves no stale name in the README or docs/."""
    for doc in ["README.md", *DOCUMENTS[1:], "docs/ARCHITECTURE.md"]:
        text = (REPO_ROOT / doc).read_text()
        for path in re.findall(r"\b((?:tests|benchmarks|tools|src/refvos)/[\w/]+\.py)\b", text):
            assert (REPO_ROOT / path).is_file(), f"{doc}: {path}"
        for dotted in set(re.findall(r"(?<![\w/-])refvos(?:\.[A-Za-z_]\w*)+", text)):
            if dotted.rsplit(".", 1)[1] in ("onnx", "pth", "json", "py"):  # file names
                continue
            assert _resolves(dotted), f"{doc}: {dotted}"


def test_readme_is_short_and_in_reading_order():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 300
    sections = re.findall(r"^## (.+)$", readme, re.M)
    assert sections[:3] == ["Install", "Quick start", "Model zoo"] and sections[-2:] == [
        "Citation",
        "License",
    ]
    assert readme.index("make demo") < readme.index(
        "## Install"
    )  # the two set-up-free commands on top
    assert "docs/images/demo_overlay.png" in readme and "docs/images/demo_video.gif" in readme


def test_the_quick_start_uses_a_released_model_by_name():
    quick = (REPO_ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (python,) = re.findall(MARK + r"\s*```python\n(.*?)```", quick, re.S)
    assert (
        'Predictor.from_pretrained("refcoco")' in python and len(python.strip().splitlines()) == 5
    )
    (cli,) = re.findall(MARK + r"\s*```bash\n(.*?)```", quick, re.S)
    argvs = commands(cli)
    assert len(argvs) == 2 and all(
        argv[argv.index("--checkpoint") + 1] in ("refcoco", "davis") for argv in argvs
    )


def test_the_docs_have_the_workflow_commands():
    run = [
        argv[0]
        for _, lang, code, marked in all_blocks()
        if marked and lang == "bash"
        for argv in commands(code)
    ]
    for command in (
        "make-synthetic",
        "train",
        "test",
        "predict",
        "pretrain-bert",
        "export",
        "export-original",
        "download",
    ):
        assert command in run, command
    assert sum(lang == "python" and marked for _, lang, _, marked in all_blocks()) >= 2


def test_every_refvos_line_of_the_documents_parses():
    lines = [argv for _, lang, code, _ in all_blocks() if lang == "bash" for argv in commands(code)]
    assert len(lines) > 25
    for argv in lines:
        args = parse(argv)  # SystemExit / RefVOSError on an unknown or renamed flag
        assert args.command == argv[0]


def _ci_argv(argv: list[str], r101_checkpoint: Path) -> list[str]:
    """A documented command as CI runs it: tiny networks, 48-pixel crops, one epoch, the CPU."""
    command, flags = argv[0], argv[1:]
    if command == "train" and "refvos_lite" not in flags:  # the real-data recipes
        network = (
            TINY_MODEL_ARGS[:4]
            if "--ck_bert" in flags
            else []
            if "--pretrained_refvos" in flags
            else TINY_MODEL_ARGS
        )
        return argv + network + SMALL_RUN
    if command == "pretrain-bert":
        return argv + [
            "--bert",
            "none",
            "--text-config",
            json.dumps(TINY_TEXT_CONFIG),
            "--epochs",
            "1",
            "-b",
            "16",
            "--device",
            "cpu",
        ]
    if command in ("test", "predict"):
        return argv + ["--device", "cpu"]
    if command == "export":
        return argv + ["--height", "64", "--width", "64"]
    if command == "export-original":  # the released layout exists for refvos_r101 only
        return [command, "--checkpoint", str(r101_checkpoint), *flags[flags.index("--out") :]]
    return argv


def _tiny_r101_mirror(tmp_path: Path, monkeypatch) -> Path:
    """A ``refvos_r101`` with a 2-layer, 64-wide BERT, saved in refvos's format (returned) and, in
    the authors' released layout, under the registry's file names of ``refcoco`` and ``davis`` in
    a mirror folder; ``REFVOS_WEIGHTS_URL`` points at it, ``REFVOS_HOME`` at an empty cache."""
    from refvos.checkpoint import read_checkpoint, save_checkpoint, to_released_format
    from refvos.hub import RELEASED
    from refvos.modeling import build_model

    torch.manual_seed(0)
    model = build_model(
        "refvos_r101", backbone_weights=None, text_encoder=None, text_config=TINY_TEXT_CONFIG
    )
    path = save_checkpoint(tmp_path / "r101.pth", model.eval())
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    released = to_released_format(read_checkpoint(path))
    for name in ("refcoco", "davis"):
        torch.save(released, mirror / RELEASED[name].filename)
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", str(mirror))
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    return path


@pytest.mark.slow
def test_documented_workflows_run_on_synthetic_data(tmp_path, monkeypatch, capsys):
    from refvos.data import synthetic
    from refvos.hub import RELEASED

    r101 = _tiny_r101_mirror(tmp_path, monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    synthetic.make_refcoco(Path("refer/data"), num_images=20, image_size=48)
    synthetic.make_davis(Path("davis2017"), num_videos=5, num_frames=4, image_size=48)
    synthetic.make_a2d(
        Path("a2d/Release"), num_videos=5, num_frames=4, image_size=48, annotated_every=2
    )
    first = sorted(Path("refer/data/images").rglob("*.png"))[0]
    Image.open(first).convert("RGB").save("photo.jpg")
    frames = [
        Image.open(f).convert("RGB")
        for f in sorted(Path("davis2017").rglob("JPEGImages/480p/*/*.jpg"))[:4]
    ]
    frames[0].save("clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

    for doc, lang, code, marked in all_blocks():
        if not marked:
            continue
        if lang == "python":
            exec(compile(code, doc, "exec"), {})
            continue
        for argv in commands(code):
            argv = _ci_argv(argv, r101)
            assert main(argv) == 0, (doc, argv, capsys.readouterr().err[-2000:])
    # the released models by name were fetched into the empty cache and their hashes recorded
    for name in ("refcoco", "davis"):
        assert (tmp_path / "cache" / "checkpoints" / f"{RELEASED[name].filename}.sha256").is_file()
    # what the blocks promise exists
    assert (
        Path("clip_davis/expr_0/overlay.gif").is_file()
        and len(list(Path("clip_davis/expr_0/masks").glob("*.png"))) == 4
    )
    assert (
        Path("output/davis/submission").is_dir()
        and Path("clip_refvos/expr_0/overlay.gif").is_file()
    )
    assert (
        Path("overlay.png").is_file()
        and Path("refvos.onnx").is_file()
        and Path("synthetic_overlay.png").is_file()
    )
    assert Path("refcoco_hf/model.safetensors").is_file() and Path("refcoco_released.pth").is_file()
    assert np.asarray(Image.open("overlay.png")).shape[1] == 48
