"""A catalogue of bad (and odd-but-valid) inputs, one row each.

Every bad input must end in the project's own error (a :class:`RefVOSError` subclass) whose
message names the file, line or argument and says what was expected, on one line, with nothing
written; through the CLI (``refvos predict``, ``refvos test``, ``refvos train``) the same input
gives exit status 2, one ``refvos <command>: error: ...`` line on stderr and no traceback.
Odd-but-valid inputs (grayscale, RGBA, palette, 16-bit, CMYK, 1x1 images, a 5,000-character or
non-English expression) must simply work.

Tables: :data:`LIBRARY` (library calls that must fail), :data:`WORKS` (library calls that must
succeed), :data:`CLI` (command lines that must exit with status 2), :data:`CLI_WORKS` (command
lines on odd-but-valid images that must succeed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from refvos.errors import CheckpointError, DataFormatError, InputError, RefVOSError
from tests.helpers import (
    REPO_ROOT,
    TINY_MODEL_ARGS,
    frames_folder,
    make_tiny_model,
    rgb,
    tree,
    truncated_png,
    write_constant_png,
    write_image,
)

# ------------------------------------------------------------------------------ shared inputs


@dataclass
class Env:
    """What the cases share: a good tiny checkpoint and tiny data-set roots (built once)."""

    ckpt: Path
    refer: Path
    a2d: Path
    davis: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    from refvos.checkpoint import save_checkpoint
    from refvos.data.synthetic import make_a2d, make_davis, make_refcoco

    base = tmp_path_factory.mktemp("shared")
    ckpt = save_checkpoint(base / "tiny.pth", make_tiny_model(max_tokens=10))
    refer = make_refcoco(base / "refer", num_images=4, image_size=48)
    a2d = make_a2d(base / "a2d", num_videos=2, num_frames=3, image_size=48)
    davis = make_davis(base / "davis", num_videos=2, num_frames=2, image_size=48)
    return Env(ckpt, refer, a2d, davis)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _ckpt_dict(env: Env) -> dict:
    return torch.load(env.ckpt, weights_only=True)


# -- checkpoints -----------------------------------------------------------------------------


def other_model_ckpt(tmp: Path, env: Env) -> Path:
    """A torchvision ResNet-18 saved as if it were a RefVOS checkpoint."""
    import torchvision

    ckpt = _ckpt_dict(env)
    ckpt["model"] = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(ckpt, tmp / "resnet18.pth")
    return tmp / "resnet18.pth"


def truncated_ckpt(tmp: Path, env: Env) -> Path:
    data = env.ckpt.read_bytes()
    (tmp / "cut.pth").write_bytes(data[: len(data) * 2 // 3])
    return tmp / "cut.pth"


def nan_ckpt(tmp: Path, env: Env) -> Path:
    ckpt = _ckpt_dict(env)
    key = next(k for k, v in ckpt["model"].items() if v.is_floating_point() and v.ndim == 4)
    ckpt["model"][key][0].fill_(float("nan"))
    torch.save(ckpt, tmp / "nan.pth")
    return tmp / "nan.pth"


def not_a_ckpt(tmp: Path, env: Env) -> Path:
    torch.save({"weights": torch.zeros(3)}, tmp / "weights.pth")
    return tmp / "weights.pth"


# -- data sets -------------------------------------------------------------------------------


def refer_without_instances(tmp: Path, env: Env) -> Path:
    root = _copy(env.refer, tmp / "refer")
    (root / "refcoco" / "instances.json").unlink()
    return root


def a2d_short_query_line(tmp: Path, env: Env) -> Path:
    root = _copy(env.a2d, tmp / "a2d")
    with open(root / "a2d_annotation.txt", "a", encoding="utf-8") as f:
        f.write("v000,7\n")  # no query
    return root


def a2d_query_line_number(root: Path) -> int:
    return len((root / "a2d_annotation.txt").read_text(encoding="utf-8").splitlines())


def davis_unquoted_line(tmp: Path, env: Env) -> Path:
    root = _copy(env.davis, tmp / "davis")
    for name in ("Davis17_annot1.txt", "Davis17_annot2.txt"):
        path = root / "davis_text_annotations" / name
        lines = path.read_bytes().splitlines()
        lines.insert(1, b"v000 1 the dog on the left")
        path.write_bytes(b"\n".join(lines) + b"\n")
    return root


def a2d_h5_without_remask(tmp: Path, env: Env) -> tuple[Path, Path]:
    root = _copy(env.a2d, tmp / "a2d")
    h5 = sorted((root / "a2d_annotation_with_instances").rglob("*.h5"))[0]
    with h5py.File(h5, "r+") as f:
        del f["reMask"]
    return root, h5


# ------------------------------------------------------------------------------ library table


@dataclass(frozen=True)
class Case:
    """``make(tmp, env)`` builds the bad input and returns the call that must fail with ``error``,
    whose message must match every regex of ``expect``."""

    make: Callable[[Path, Env], Callable[[], Any]]
    error: type[RefVOSError]
    expect: tuple[str, ...]


def _load_image(path_of: Callable[[Path], Path]) -> Callable[[Path, Env], Callable[[], Any]]:
    from refvos.media.image import load_image

    return lambda tmp, env: (lambda p=path_of(tmp): lambda: load_image(p))()


def _encode(text: str) -> Callable[[Path, Env], Callable[[], Any]]:
    from refvos.tokenization import get_tokenizer

    return lambda tmp, env: lambda: get_tokenizer().encode([text], 20)


def _video(make_folder: Callable[[Path], Path]) -> Callable[[Path, Env], Callable[[], Any]]:
    def make(tmp: Path, env: Env) -> Callable[[], Any]:
        from refvos.checkpoint import load_checkpoint
        from refvos.media.video import read_video_frames
        from refvos.predictor import Predictor

        folder = make_folder(tmp)
        predictor = Predictor(load_checkpoint(env.ckpt), device="cpu", precision="fp32")
        return lambda: predictor.predict_video(read_video_frames(folder), "the red circle")

    return make


def _dataset(
    name: str, root_of: Callable[[Path, Env], Path], **opts
) -> Callable[[Path, Env], Callable[[], Any]]:
    from refvos.data import build_dataset

    def make(tmp: Path, env: Env) -> Callable[[], Any]:
        root = root_of(tmp, env)
        split = {"a2d": "train", "davis": "val"}.get(name, "train")
        return lambda: build_dataset(name, root, split, "eval", **opts)

    return make


def _checkpoint(path_of: Callable[[Path, Env], Path]) -> Callable[[Path, Env], Callable[[], Any]]:
    from refvos.checkpoint import load_checkpoint

    return lambda tmp, env: (lambda p=path_of(tmp, env): lambda: load_checkpoint(p))()


def _write(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(content)
        return tmp / name

    return make


def _refer_wrong_split_by(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data.refer import REFER

    return lambda: REFER(env.refer, "refcoco", "umd")


def _refer_unknown_split(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data.refer import REFER

    refer = REFER(env.refer, "refcoco", "unc")
    return lambda: refer.getRefIds(split="training")


def _refs_not_a_list(tmp: Path, env: Env) -> Callable[[], Any]:
    import pickle

    from refvos.data.refer import REFER

    root = _copy(env.refer, tmp / "refer")
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps({"refs": []}, protocol=2))
    return lambda: REFER(root, "refcoco", "unc")


def _instances_bad_json(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data.refer import REFER

    root = _copy(env.refer, tmp / "refer")
    (root / "refcoco" / "instances.json").write_text('{"images": [\n  {"id": 1,\n  oops\n')
    return lambda: REFER(root, "refcoco", "unc")


def _h5_without_remask(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data import build_dataset

    root, _ = a2d_h5_without_remask(tmp, env)
    return lambda: build_dataset("a2d", root, "train", "eval")


def _videoset_bad_usage(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data import build_dataset

    root = _copy(env.a2d, tmp / "a2d")
    with open(root / "videoset.csv", "a") as f:
        f.write("v999,label,2\n")
    return lambda: build_dataset("a2d", root, "train", "eval")


def _categorization_bad_cell(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data.annotations import CATEGORIZATION_HEADER, load_categorization

    path = tmp / "cats.csv"
    path.write_text(
        ";".join(CATEGORIZATION_HEADER) + "\r\nv1;1;a dog;easy;Not Applicable;1;0;yes;0;0;0;0\r\n"
    )
    return lambda: load_categorization(path)


def _augmented_bad_row(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data.annotations import load_augmented_expressions

    path = tmp / "new_res.txt"
    path.write_text("video_id,instance_id,query\nv1;0;a dog\nv1,1,a cat\n")
    return lambda: load_augmented_expressions(path)


def _davis_palette_rgb(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data.davis import read_object_ids

    path = write_image(tmp / "00000.png", "RGB")
    return lambda: read_object_ids(path)


def _nan_loss(tmp: Path, env: Env) -> Callable[[], Any]:
    from refvos.data import build_dataset
    from refvos.engine.trainer import TrainConfig, Trainer

    train = build_dataset(
        "refcoco", env.refer, "train", "train", max_tokens=10, base_size=40, crop_size=48
    )
    config = TrainConfig(
        output_dir=tmp / "run",
        epochs=1,
        schedule="constant",
        lr=0.01,
        batch_size=2,
        workers=0,
        progress=False,
        tensorboard=False,
        print_freq=100,
    )
    trainer = Trainer(make_tiny_model(max_tokens=10), train, config)
    criterion = trainer.criterion
    trainer.criterion = lambda logits, target: criterion(logits, target) * float("nan")
    return trainer.fit


LIBRARY: dict[str, Case] = {
    # images
    "image missing": Case(
        _load_image(lambda t: t / "nope.png"), InputError, (r"nope\.png", "does not exist")
    ),
    "image empty": Case(
        _load_image(_write("empty.jpg", b"")), InputError, (r"empty\.jpg", r"empty \(0 bytes\)")
    ),
    "image truncated": Case(
        _load_image(lambda t: truncated_png(t / "cut.png")),
        InputError,
        (r"cut\.png", "truncated or corrupt"),
    ),
    "image is text": Case(
        _load_image(_write("notes.jpg", b"shopping list: eggs\n")),
        InputError,
        (r"notes\.jpg", "not a readable image"),
    ),
    "image 10000x10000": Case(
        _load_image(lambda t: write_constant_png(t / "huge.png", 10000, 10000)),
        InputError,
        (r"huge\.png", "10000x10000", "limit", "downscale"),
    ),
    "image array of bad shape": Case(
        lambda t, e: (
            lambda: __import__("refvos.media.image").media.image.load_image(
                np.zeros((4, 4, 2), np.uint8)
            )
        ),
        InputError,
        (r"\(H, W, 3\)", r"\(4, 4, 2\)"),
    ),
    # expressions
    "expression empty": Case(_encode(""), InputError, ("expression is empty",)),
    "expression whitespace": Case(_encode(" \t\n "), InputError, ("expression is empty",)),
    "expression invisible only": Case(_encode("\u200b\u200b"), InputError, ("has no words",)),
    "expression lone surrogate": Case(_encode("the d\ud800og"), InputError, ("not valid text",)),
    # videos
    "video unreadable frame": Case(
        _video(lambda t: frames_folder(t / "clip", [(32, 40)] * 4, bad=2)),
        InputError,
        (r"clip/00002\.png", "not a readable image"),
    ),
    "video differently sized frame": Case(
        _video(lambda t: frames_folder(t / "clip", [(32, 40), (32, 40), (40, 32)])),
        InputError,
        ("frames differ in size", "40x32", "32x40"),
    ),
    "video empty folder": Case(
        _video(lambda t: (t / "clip").mkdir() or t / "clip"), InputError, (r"clip", "has no frames")
    ),
    # data sets
    "refer missing instances.json": Case(
        _dataset("refcoco", refer_without_instances),
        DataFormatError,
        (r"refcoco/instances\.json", "file not found", "expected"),
    ),
    "refer refs of the wrong split scheme": Case(
        _refer_wrong_split_by,
        DataFormatError,
        (r"refs\(umd\)\.p", "file not found", "split by unc or google"),
    ),
    "refer unknown split": Case(
        _refer_unknown_split, DataFormatError, ("no such split 'training'", "testA")
    ),
    "refer refs not a list": Case(
        _refs_not_a_list, DataFormatError, (r"refs\(unc\)\.p", "expected a list of refs")
    ),
    "refer instances not JSON": Case(
        _instances_bad_json, DataFormatError, (r"instances\.json:3", "not valid JSON")
    ),
    "a2d query line with too few fields": Case(
        _dataset("a2d", a2d_short_query_line),
        DataFormatError,
        (r"a2d_annotation\.txt:\d+", "expected 'video_id,instance_id,query'", "v000"),
    ),
    "a2d videoset usage not 0/1": Case(
        _videoset_bad_usage,
        DataFormatError,
        (r"videoset\.csv:\d+", r"usage 0 \(train\) or 1 \(test\)"),
    ),
    "a2d h5 without reMask": Case(
        _h5_without_remask, DataFormatError, (r"\.h5", "reMask", "expected an HDF5")
    ),
    "davis expression without quotes": Case(
        _dataset("davis", davis_unquoted_line),
        DataFormatError,
        (r"Davis17_annot1\.txt:2", "expected '<sequence> <object id>", "the dog on the left"),
    ),
    "davis annotation not a palette PNG": Case(
        _davis_palette_rgb, DataFormatError, (r"00000\.png", "mode RGB", "palette")
    ),
    "categorisation cell not 0/1": Case(
        _categorization_bad_cell,
        DataFormatError,
        (r"cats\.csv:2", "category 'category' is 'yes'", "expected 0, 1"),
    ),
    "augmented expressions bad row": Case(
        _augmented_bad_row,
        DataFormatError,
        (r"new_res\.txt:3", "expected 'video;instance_id;query'"),
    ),
    # checkpoints
    "checkpoint of another model": Case(
        _checkpoint(other_model_ckpt),
        CheckpointError,
        (r"resnet18\.pth", "do not fit", "refvos_lite"),
    ),
    "checkpoint truncated": Case(
        _checkpoint(truncated_ckpt), CheckpointError, (r"cut\.pth", "cannot be read")
    ),
    "checkpoint with NaN weights": Case(
        _checkpoint(nan_ckpt), CheckpointError, (r"nan\.pth", "NaN or infinite")
    ),
    "checkpoint without model": Case(
        _checkpoint(not_a_ckpt),
        CheckpointError,
        (r"weights\.pth", "not a RefVOS checkpoint", "expected a dict with 'model'"),
    ),
    # training
    "NaN loss during training": Case(
        _nan_loss, RefVOSError, ("loss became nan", "epoch 0, step 0", "training stopped")
    ),
}


@pytest.mark.parametrize("name", list(LIBRARY))
def test_library_refuses_with_a_clear_message(name, env, tmp_path):
    case = LIBRARY[name]
    call = case.make(tmp_path, env)
    before = tree(tmp_path)
    with pytest.raises(case.error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, f"message is not one line: {message!r}"
    for pattern in case.expect:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    after = [
        p for p in tree(tmp_path) if not p.startswith("run")
    ]  # the training run dir: events only
    assert after == [p for p in before if not p.startswith("run")], "something was written"


def test_nan_loss_leaves_no_checkpoint_and_names_it(env, tmp_path):
    """The NaN case above stops at the very first step: no checkpoint is written, and the
    message says so (the keep-the-last-good-one case is in test_kill_resume.py)."""
    call = _nan_loss(tmp_path, env)
    with pytest.raises(RefVOSError, match="No checkpoint was written yet"):
        call()
    assert not list((tmp_path / "run").glob("*.pth"))


# ------------------------------------------------------------------------------ must work


def _image_works(mode: str, h: int = 40, w: int = 48) -> Callable[[Path, Env], Any]:
    from refvos.media.image import load_image

    def run(tmp: Path, env: Env):
        suffix = ".jpg" if mode == "CMYK" else ".png"
        out = load_image(write_image(tmp / f"img{suffix}", mode, h, w))
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        return out

    return run


def _expression_works(text: str, min_tokens: int) -> Callable[[Path, Env], Any]:
    from refvos.tokenization import get_tokenizer

    def run(tmp: Path, env: Env):
        ids, mask = get_tokenizer().encode([text], 20)
        n = int(mask.sum())
        assert min_tokens <= n <= 20
        assert (
            ids[0, 0] == get_tokenizer().cls_token_id
            and ids[0, n - 1] == get_tokenizer().sep_token_id
        )
        return n

    return run


def _one_pixel(tmp: Path, env: Env):
    from refvos.checkpoint import load_checkpoint
    from refvos.predictor import Predictor

    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(tmp / "dot.png")
    mask = Predictor(load_checkpoint(env.ckpt), device="cpu", precision="fp32").predict(
        tmp / "dot.png", "the dot"
    )
    assert mask.shape == (1, 1) and mask.dtype == bool


WORKS: dict[str, Callable[[Path, Env], Any]] = {
    "grayscale": _image_works("L"),
    "RGBA": _image_works("RGBA"),
    "palette": _image_works("P"),
    "16-bit": _image_works("I;16"),
    "CMYK JPEG": _image_works("CMYK"),
    "1x1 image through the predictor": _one_pixel,
    "5000-character expression (truncated)": _expression_works("the man on the left " * 250, 20),
    "5000 characters in one word": _expression_works("x" * 5000, 3),
    "Chinese expression": _expression_works("左边穿红衣服的男人", 5),
    "German expression": _expression_works("der große Hund links", 5),
    "Arabic expression": _expression_works("الرجل على اليسار", 5),
    "emoji expression": _expression_works("the 🐶 on the left", 5),
}


@pytest.mark.parametrize("name", list(WORKS))
def test_odd_but_valid_input_works(name, env, tmp_path):
    WORKS[name](tmp_path, env)


def test_huge_image_is_refused_before_decoding(tmp_path):
    """The 10000 x 10000 PNG (100 MP, 300 MB as RGB) is refused from its header: peak memory
    of a fresh process grows by far less than one decoded copy."""
    path = write_constant_png(tmp_path / "huge.png", 10000, 10000)
    code = (
        "import resource, sys\n"
        "from refvos.media.image import load_image\n"
        "from refvos.errors import InputError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except InputError as e:\n"
        "    print('refused', e)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    assert "refused" in out and "10000x10000" in out
    grew_kb = int(re.search(r"grew_kb (\d+)", out).group(1))
    assert grew_kb < 50_000, f"peak memory grew by {grew_kb} kB: the image was decoded"


# ------------------------------------------------------------------------------ command line


@dataclass(frozen=True)
class CliCase:
    """``argv(tmp, env)`` builds the bad input and returns the command line; it must exit with
    status 2, print one error line matching every regex of ``expect`` and write nothing."""

    argv: Callable[[Path, Env], list[str]]
    expect: tuple[str, ...]


def _predict(
    image: Callable[[Path], Path] | None = None,
    expression: str = "the red circle",
    ckpt: Callable[[Path, Env], Path] | None = None,
    video: Callable[[Path], Path] | None = None,
    extra: tuple[str, ...] = (),
) -> Callable[[Path, Env], list[str]]:
    def argv(tmp: Path, env: Env) -> list[str]:
        args = [
            "predict",
            "--checkpoint",
            str(ckpt(tmp, env) if ckpt else env.ckpt),
            "-e",
            expression,
            "--device",
            "cpu",
            "--precision",
            "fp32",
            *extra,
        ]
        if video is not None:
            return [*args, "--video", str(video(tmp)), "--out-dir", str(tmp / "out")]
        source = image(tmp) if image else write_image(tmp / "photo.png", "RGB")
        return [
            *args,
            "--image",
            str(source),
            "--out",
            str(tmp / "overlay.png"),
            "--mask-out",
            str(tmp / "mask.png"),
        ]

    return argv


def _test(
    dataset: str, root: Callable[[Path, Env], Path], ckpt: Callable[[Path, Env], Path] | None = None
) -> Callable[[Path, Env], list[str]]:
    flag = {"refcoco": "--refer_data_root", "a2d": "--a2d_root", "davis": "--davis_root"}[dataset]
    split = {"refcoco": "train", "a2d": "train", "davis": "val"}[dataset]  # the splits with samples

    def argv(tmp: Path, env: Env) -> list[str]:
        return [
            "test",
            "--dataset",
            dataset,
            flag,
            str(root(tmp, env)),
            "--split",
            split,
            "--resume",
            str(ckpt(tmp, env) if ckpt else env.ckpt),
            "--device",
            "cpu",
            "--output-dir",
            str(tmp / "out"),
        ]

    return argv


CLI: dict[str, CliCase] = {
    "predict: image missing": CliCase(
        _predict(image=lambda t: t / "nope.jpg"), (r"nope\.jpg", "does not exist")
    ),
    "predict: image empty": CliCase(
        _predict(image=_write("empty.png", b"")), (r"empty\.png", "empty")
    ),
    "predict: image truncated": CliCase(
        _predict(image=lambda t: truncated_png(t / "cut.png")),
        (r"cut\.png", "truncated or corrupt"),
    ),
    "predict: not an image": CliCase(
        _predict(image=_write("cv.pdf", b"%PDF-1.4\n")), (r"cv\.pdf", "not a readable image")
    ),
    "predict: 10000x10000 image": CliCase(
        _predict(image=lambda t: write_constant_png(t / "huge.png", 10000, 10000)),
        (r"huge\.png", "10000x10000", "limit"),
    ),
    "predict: empty expression": CliCase(_predict(expression=""), ("--expression is empty",)),
    "predict: whitespace expression": CliCase(
        _predict(expression="   "), ("--expression is empty",)
    ),
    "predict: checkpoint of another model": CliCase(
        _predict(ckpt=other_model_ckpt), (r"resnet18\.pth", "do not fit")
    ),
    "predict: checkpoint truncated": CliCase(
        _predict(ckpt=truncated_ckpt), (r"cut\.pth", "cannot be read")
    ),
    "predict: checkpoint with NaN": CliCase(_predict(ckpt=nan_ckpt), (r"nan\.pth", "NaN")),
    "predict: checkpoint missing": CliCase(
        _predict(ckpt=lambda t, e: t / "none.pth"), (r"none\.pth", "does not exist")
    ),
    "predict: --max-size too small": CliCase(
        _predict(extra=("--max-size", "4")), ("--max-size", "at least 16")
    ),
    "predict: video with an unreadable frame": CliCase(
        _predict(video=lambda t: frames_folder(t / "clip", [(32, 40)] * 5, bad=3)),
        (r"clip/00003\.png", "not a readable image"),
    ),
    "predict: video with a differently sized frame": CliCase(
        _predict(video=lambda t: frames_folder(t / "clip", [(32, 40)] * 3 + [(40, 32)])),
        ("00003", "40x32", "32x40", "same size"),
    ),
    "predict: video folder missing": CliCase(
        _predict(video=lambda t: t / "clip"), (r"clip", "does not exist")
    ),
    "test: refer root without instances.json": CliCase(
        _test("refcoco", refer_without_instances), (r"instances\.json", "file not found")
    ),
    "test: a2d query line with too few fields": CliCase(
        _test("a2d", a2d_short_query_line), (r"a2d_annotation\.txt:\d+", "expected 'video_id")
    ),
    "test: davis expression without quotes": CliCase(
        _test("davis", davis_unquoted_line), (r"Davis17_annot1\.txt:2", "expected '<sequence>")
    ),
    "test: a2d h5 without reMask": CliCase(
        _test("a2d", lambda t, e: a2d_h5_without_remask(t, e)[0]), (r"\.h5", "reMask")
    ),
    "test: checkpoint with NaN": CliCase(
        _test("refcoco", lambda t, e: e.refer, ckpt=nan_ckpt), (r"nan\.pth", "NaN")
    ),
}


def _run_cli(argv: list[str], tmp: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    from refvos.cli import main

    monkeypatch.chdir(tmp)
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name", list(CLI))
def test_cli_exits_2_with_one_line(name, env, tmp_path, monkeypatch, capsys):
    case = CLI[name]
    argv = case.argv(tmp_path, env)
    before = tree(tmp_path)
    rc, out, err = _run_cli(argv, tmp_path, monkeypatch, capsys)
    command = argv[0]
    assert rc == 2, f"exit status {rc}; stderr: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"refvos {command}: error: "), err
    assert "Traceback" not in err
    for pattern in case.expect:
        assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    assert tree(tmp_path) == before, "partial output was written"


def test_cli_exit_status_through_the_real_entry_point(env, tmp_path):
    """The same contract through ``python -m refvos`` (a separate process, no test harness)."""
    argv = _predict(image=lambda t: truncated_png(t / "cut.png"))(tmp_path, env)
    proc = subprocess.run(
        [sys.executable, "-m", "refvos", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert re.search(r"refvos predict: error: .*cut\.png.*truncated or corrupt", proc.stderr)
    assert not (tmp_path / "overlay.png").exists() and not (tmp_path / "mask.png").exists()


CLI_WORKS = {"grayscale": "L", "RGBA": "RGBA", "palette": "P", "16-bit": "I;16", "CMYK": "CMYK"}


@pytest.mark.parametrize("name", list(CLI_WORKS))
def test_cli_predict_converts_image_modes(name, env, tmp_path, monkeypatch, capsys):
    mode = CLI_WORKS[name]
    image = write_image(tmp_path / ("photo.jpg" if mode == "CMYK" else "photo.png"), mode, 30, 44)
    argv = _predict(image=lambda t: image)(tmp_path, env)
    rc, out, err = _run_cli(argv, tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    with Image.open(tmp_path / "mask.png") as m:
        assert m.size == (44, 30)


def test_cli_predict_one_pixel_and_long_foreign_expression(env, tmp_path, monkeypatch, capsys):
    Image.fromarray(rgb(1, 1)).save(tmp_path / "dot.png")
    argv = _predict(
        image=lambda t: t / "dot.png", expression="左边的男人 " + "very " * 1000 + "tall man"
    )(tmp_path, env)
    rc, out, err = _run_cli([*argv, "--json"], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    with Image.open(tmp_path / "mask.png") as m:
        assert m.size == (1, 1)


# ------------------------------------------------------------------------------ train


@pytest.mark.parametrize("name", ["missing instances.json", "bad --resume"])
def test_cli_train_bad_input(name, env, tmp_path, monkeypatch, capsys):
    if name == "missing instances.json":
        root, resume, expect = refer_without_instances(tmp_path, env), [], r"instances\.json"
    else:
        root, resume, expect = (
            env.refer,
            ["--resume", str(truncated_ckpt(tmp_path, env))],
            r"cut\.pth",
        )
    argv = [
        "train",
        "--dataset",
        "refcoco",
        "--refer_data_root",
        str(root),
        "--output-dir",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        *TINY_MODEL_ARGS,
        "-j",
        "0",
        *resume,
    ]
    before = tree(tmp_path)
    rc, out, err = _run_cli(argv, tmp_path, monkeypatch, capsys)
    assert rc == 2, err
    assert "Traceback" not in err and re.search(expect, err)
    assert (
        tree(tmp_path) == before
    )  # refused before anything was written: no run folder, no checkpoint
    assert [p for p in tree(tmp_path) if not p.startswith("run")] == [
        p for p in before if not p.startswith("run")
    ]
