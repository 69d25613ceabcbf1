from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from refvos import Predictor
from refvos.checkpoint import save_checkpoint
from refvos.errors import InputError
from tests.helpers import (
    REPO_ROOT,
    TINY_TEXT_CONFIG,
    assert_mixed,
    make_mixed_model,
    make_tiny_model,
    reference_mask,
)


@pytest.fixture(scope="module")
def mixed_model():
    return make_mixed_model()


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8)


def test_predict_equals_original_pipeline_in_fp32(mixed_model, picture):
    p = Predictor(mixed_model, device="cpu", precision="fp32")
    got = p.predict(picture, "the man on the left")
    assert got.dtype == bool and got.shape == (45, 61)
    expected = reference_mask(mixed_model, picture, "the man on the left")
    assert_mixed([expected])
    np.testing.assert_array_equal(got, expected)


def test_several_expressions_reuse_the_image_features(mixed_model, picture, monkeypatch):
    p = Predictor(mixed_model, device="cpu", precision="fp32")
    calls = []
    backbone_forward = p.model.segmenter.backbone.forward
    monkeypatch.setattr(
        p.model.segmenter.backbone, "forward", lambda x: calls.append(1) or backbone_forward(x)
    )
    results = p.predict_all(picture, ["the cat", "a dog on the right"])
    assert len(calls) == 1 and len(results) == 2
    for r in results:
        expected = reference_mask(mixed_model, picture, r.expression)
        assert_mixed([expected])
        np.testing.assert_array_equal(r.mask, expected)
        assert r.area == int(r.mask.sum())


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_image_modes_are_converted(tiny_model, tmp_path, mode):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, size=(23, 31), dtype=np.uint16))
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tiff" if mode in ("I;16", "CMYK") else "x.png")
    img.save(path)
    mask = Predictor(tiny_model, device="cpu", precision="fp32").predict(path, "the dog")
    assert mask.shape == (23, 31)


def test_exif_orientation_is_applied(tiny_model, tmp_path):
    img = Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    img.save(tmp_path / "r.jpg", exif=exif)
    assert Predictor(tiny_model, device="cpu").predict(tmp_path / "r.jpg", "x").shape == (30, 20)


def test_max_size_caps_the_processed_image_but_returns_full_size(tiny_model, picture, monkeypatch):
    p = Predictor(tiny_model, device="cpu", max_size=32)
    assert max(p.preprocess(picture).shape[-2:]) == 32
    assert p.predict(picture, "the dog").shape == picture.shape[:2]


def test_predict_video_encodes_the_sentence_once(mixed_model, monkeypatch):
    frames = [
        np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8) for i in range(5)
    ]
    p = Predictor(mixed_model, device="cpu", precision="fp32")
    calls = []
    encode = p.model.encode_text
    monkeypatch.setattr(p.model, "encode_text", lambda *a: calls.append(1) or encode(*a))
    masks = [r.mask for r in p.predict_video(frames, "the square moving left", batch_size=2)]
    assert len(calls) == 1 and len(masks) == 5
    for frame, mask in zip(frames, masks):
        expected = reference_mask(mixed_model, frame, "the square moving left")
        assert_mixed([expected])
        np.testing.assert_array_equal(mask, expected)


def test_video_frames_of_different_sizes_are_refused(tiny_model):
    frames = [np.zeros((24, 32, 3), np.uint8), np.zeros((20, 32, 3), np.uint8)]
    with pytest.raises(InputError, match="differ in size"):
        Predictor(tiny_model, device="cpu").predict_video(frames, "x")


@pytest.mark.parametrize(
    ("image", "expression", "message"),
    [
        (np.zeros((8, 8, 3), np.uint8), "  ", "empty"),
        (np.zeros((8, 8, 5), np.uint8), "dog", "shape"),
        ("/nonexistent/photo.jpg", "dog", "does not exist"),
        (12, "dog", "must be a path"),
    ],
)
def test_bad_inputs_raise_value_errors(tiny_model, image, expression, message):
    with pytest.raises(ValueError, match=message):
        Predictor(tiny_model, device="cpu").predict(image, expression)


def test_corrupt_image_file(tiny_model, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InputError, match="bad.jpg"):
        Predictor(tiny_model, device="cpu").predict(tmp_path / "bad.jpg", "dog")


# -- the SAM-style API -----------------------------------------------------------------------------
def test_from_checkpoint_and_argument_order(mixed_model, picture, tmp_path):
    from refvos.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "m.pth", mixed_model)
    p = Predictor.from_checkpoint(path, device="cpu", precision="fp32")
    (r,) = p.predict_all(picture, ["the dog"])  # image first, as predict(image, expression)
    np.testing.assert_array_equal(r.mask, p.predict(picture, "the dog"))
    expected = reference_mask(mixed_model, picture, "the dog")
    assert_mixed([expected])
    np.testing.assert_array_equal(r.mask, expected)
    with pytest.raises(TypeError, match="image comes first"):
        p.predict_all(["the dog"], picture)


def test_predict_video_from_a_path_with_scores(mixed_model, tmp_path):
    frames = [
        np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8) for i in range(3)
    ]
    gif = tmp_path / "clip.gif"
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    p = Predictor(mixed_model, device="cpu", precision="fp32")
    from_folder = p.predict_video(folder, "the cat", batch_size=2)
    assert (
        len(p.predict_video(gif, "the cat")) == 3
        and len(p.predict_video(str(folder), "the cat")) == 3
    )
    for frame, r in zip(frames, from_folder):
        (single,) = p.predict_all(frame, ["the cat"])  # the same definitions as for an image
        np.testing.assert_array_equal(r.mask, single.mask)
        assert_mixed([single.mask])
        assert r.area == single.area and r.box == single.box
        assert r.score == pytest.approx(single.score, abs=1e-5) and 0.0 <= r.score <= 1.0


def test_predictor_does_not_change_the_model_it_is_given(tiny_model, picture):
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    p = Predictor(tiny_model, device="cpu", precision="bf16", channels_last=True)
    p.predict(picture, "the dog")
    assert tiny_model.training
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k
        assert v.is_contiguous(), k  # not converted to channels-last


def test_max_size_defaults_to_the_size_the_checkpoint_records(tiny_model):
    big = np.zeros((64, 96, 3), np.uint8)
    assert Predictor(tiny_model, device="cpu").preprocess(big).shape[-2:] == (
        64,
        96,
    )  # None: native
    tiny_model.config.input_size = 48
    p = Predictor(tiny_model, device="cpu")
    assert p.max_size == 48 and p.preprocess(big).shape[-2:] == (32, 48)
    assert Predictor(tiny_model, device="cpu", max_size=None).preprocess(big).shape[-2:] == (64, 96)
    assert Predictor(tiny_model, device="cpu", max_size=80).preprocess(big).shape[-2:] == (53, 80)
    assert p.predict(big, "x").shape == (64, 96)  # the mask at the picture's size


def test_iter_video_all_encodes_each_expression_once_and_batches_frames(mixed_model, monkeypatch):
    frames = [
        np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8) for i in range(5)
    ]
    expressions = ["the square moving left", "the red ball"]
    p = Predictor(mixed_model, device="cpu", precision="fp32")
    text_calls, image_batches = [], []
    encode_text, encode = p.model.encode_text, p.runner.encode
    monkeypatch.setattr(
        p.model, "encode_text", lambda *a: text_calls.append(a[0].shape[0]) or encode_text(*a)
    )
    monkeypatch.setattr(p.runner, "encode", lambda x: image_batches.append(x.shape[0]) or encode(x))
    out = list(p.iter_video_all(frames, expressions, batch_size=2))
    assert text_calls == [2] and image_batches == [2, 2, 1]
    for (rgb, preds), frame in zip(out, frames):
        assert rgb is not None and [r.expression for r in preds] == expressions
        for r in preds:
            expected = reference_mask(mixed_model, frame, r.expression)
            assert_mixed([expected])
            np.testing.assert_array_equal(r.mask, expected)
            assert r.area == int(r.mask.sum()) and 0 <= r.score <= 1
    # the same results as one image at a time
    single = p.predict_all(frames[3], expressions)
    for a, b in zip(out[3][1], single):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.score == pytest.approx(b.score, abs=1e-6) and a.box == b.box


def test_precision_choice_is_reported(tiny_model):
    p = Predictor(tiny_model, device="cpu", precision="fp32", compile=False)
    doc = p.runtime_report()
    assert doc["precision"]["precision"] == "fp32" and doc["precision"]["source"] == "explicit"
    assert doc["compile"] == {
        "setting": False,
        "compiled": False,
        "compile_s": 0.0,
        "compiled_sizes": [],
        "fallback": None,
    }


def test_auto_precision_is_one_of_the_measured_ones(tiny_model, monkeypatch):
    monkeypatch.delenv("REFVOS_PRECISION")
    p = Predictor(tiny_model, device="cpu", max_size=32, backend="torch")
    c = p.precision_choice
    assert p.precision == c.precision in ("fp32", "bf16") and c.backend == p.backend == "torch"
    assert c.source in ("measured", "cached")
    if c.source in ("measured", "cached"):
        assert set(c.seconds) == {"fp32", "bf16", "bf16+taps"} and "32x32" in c.workload


def test_compile_setting_is_checked(tiny_model):
    with pytest.raises(InputError, match="compile must be"):
        Predictor(tiny_model, device="cpu", compile="sometimes")


def test_compile_failure_falls_back_to_eager_with_a_warning(tiny_model, picture, monkeypatch):
    p = Predictor(tiny_model, device="cpu", precision="fp32", compile=False)
    expected = p.predict(picture, "the dog")

    def broken(*a, **k):
        raise RuntimeError("inductor exploded\nlong trace")

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    p = Predictor(tiny_model, device="cpu", precision="fp32", compile=True)
    with pytest.warns(RuntimeWarning, match="inductor exploded"):
        got = p.predict(picture, "the dog")
    np.testing.assert_array_equal(got, expected)
    assert (
        p.compile_report()["fallback"] == "RuntimeError: inductor exploded"
        and not p.runner.compiled
    )


def test_auto_compiles_a_size_only_where_the_frames_ahead_pay_back(tiny_model, monkeypatch):
    """Injected timings (a clock the network advances by 1 s per frame, a 60 s compile, a 5 %
    saving): 300 frames ahead save 15 s, not worth it; 3000 save 150 s and compile."""
    from refvos.runtime.compiling import SegmenterRunner

    compiled, calls = [], []

    def fake_compile(fn, **kw):
        compiled.append(kw)
        return lambda *a: calls.append(fn.__name__) or fn(*a)

    monkeypatch.setattr(torch, "compile", fake_compile)
    now = [0.0]
    p = Predictor(tiny_model, device="cpu", precision="fp32", compile=False)
    net = p.runner.segmenter

    def clock():
        return now[0]

    encode = net.encode

    def timed_encode(images):
        now[0] += 1.0 * images.shape[0]
        return encode(images)

    monkeypatch.setattr(net, "encode", timed_encode)
    p.runner = SegmenterRunner(net, "auto", clock=clock, compile_cost_s=60.0, saving=0.05)
    frame = np.zeros((24, 32, 3), np.uint8)
    frames = [frame] * 4
    list(p.iter_video_all(frames, ["x"], batch_size=1, total_frames=300))
    assert not compiled and not calls and not p.compile_report()["compiled"]
    list(p.iter_video_all(frames, ["x"], batch_size=1, total_frames=3000))
    assert len(compiled) == 2 and compiled[0]["options"] == {"freezing": True}  # encode and decode
    assert (
        calls == ["timed_encode", "decode"] * 4
    )  # measured enough frames already: all ran compiled
    p.predict(np.zeros((16, 16, 3), np.uint8), "x")  # another size, one frame: eager
    assert len(calls) == 8 and p.compile_report()["compiled_sizes"] == [[24, 32]]


@pytest.mark.slow
def test_compiled_predictor_matches_eager(tiny_model, picture):
    eager = Predictor(tiny_model, device="cpu", precision="fp32", compile=False)
    compiled = Predictor(tiny_model, device="cpu", precision="fp32", compile=True)
    frames = [picture, picture[::-1].copy()]
    want = [r for _, r in eager.iter_video_all(frames, ["the dog"], batch_size=2)]
    got = [r for _, r in compiled.iter_video_all(frames, ["the dog"], batch_size=2)]
    for a, b in zip(want, got):
        assert (a[0].mask == b[0].mask).mean() > 0.999
    report = compiled.compile_report()
    assert report["compiled"] and report["fallback"] is None and report["compile_s"] > 0


def test_prediction_score_is_the_mean_foreground_probability_inside_the_mask():
    from refvos.modeling.postprocess import foreground_mask, foreground_probability
    from refvos.predictor import prediction

    logits = torch.randn(1, 2, 9, 11, generator=torch.Generator().manual_seed(0))
    mask = foreground_mask(logits)[0]
    r = prediction("x", mask, logits[0])
    assert r.score == pytest.approx(float(foreground_probability(logits)[0][mask].mean()), abs=1e-6)
    assert r.area == int(mask.sum()) and r.mask.dtype == bool
    empty = prediction("x", torch.zeros(9, 11, dtype=torch.bool), logits[0])
    assert (empty.score, empty.area, empty.box) == (0.0, 0, None)


def test_constructing_with_auto_precision_times_nothing_and_writes_nothing(
    tiny_model, monkeypatch, tmp_path
):
    import refvos.runtime.precision

    monkeypatch.delenv("REFVOS_PRECISION")
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "cache"))

    def no_timing(*args, **kwargs):
        raise AssertionError("the constructor timed a workload")

    monkeypatch.setattr(refvos.runtime.precision, "measure", no_timing)
    for backend in ("auto", "torch"):
        p = Predictor(tiny_model, device="cpu", max_size=32, compile=False, backend=backend)
    assert not (tmp_path / "cache").exists()
    # the first use measures, and caches the choice
    monkeypatch.undo()
    monkeypatch.delenv("REFVOS_PRECISION")
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    measure = refvos.runtime.precision.measure
    monkeypatch.setattr(
        refvos.runtime.precision, "measure", lambda *a, **k: calls.append(1) or measure(*a, **k)
    )
    p.predict(np.zeros((24, 32, 3), np.uint8), "the dog")
    assert len(calls) == 1 and p.precision_choice.source == "measured"
    assert p.calibrate() is p.precision_choice and len(calls) == 1


# Start-up of a single prediction: the Predictor imports only what the checkpoint's network
# needs: neither transformers (the tokenizer is the ``tokenizers`` library, BERT is plain PyTorch)
# nor timm, torchvision or ``torch._dynamo`` (ResNet-101 and EfficientNet-Lite0 are plain PyTorch
# with the parameter names of torchvision's and timm's networks).
WATCHED = ("transformers", "timm", "torchvision", "torch._dynamo", "matplotlib", "scipy", "skimage")


def _imported_after(code: str) -> list[str]:
    """The :data:`WATCHED` packages in ``sys.modules`` after running ``code`` in a fresh Python."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    report = (
        f"import json, sys\nprint(json.dumps(sorted(m for m in {WATCHED!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code + "\n" + report],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_predictor_imports_no_model_library():
    assert _imported_after("from refvos.predictor import Predictor") == []


def _predicting_with(path) -> str:
    """Code that loads the checkpoint at ``path`` and predicts one small picture."""
    return (
        "import numpy as np\n"
        "from refvos.predictor import Predictor\n"
        f"p = Predictor.from_checkpoint({str(path)!r}, device='cpu', precision='fp32', compile=False)\n"
        "mask = p.predict(np.zeros((40, 48, 3), np.uint8), 'the red circle on the left')\n"
        "assert mask.shape == (40, 48)\n"
    )


def test_predicting_with_lite_imports_no_model_library(tmp_path):
    code = _predicting_with(save_checkpoint(tmp_path / "tiny.pth", make_tiny_model()))
    # the EfficientNet-Lite0 is plain PyTorch (refvos.modeling.efficientnet_lite), as BERT is
    assert _imported_after(code) == []


def test_predicting_with_r101_imports_neither_torchvision_nor_dynamo(tmp_path):
    from refvos.modeling import build_model

    model = build_model(
        "refvos_r101", backbone_weights=None, text_encoder=None, text_config=TINY_TEXT_CONFIG
    )
    code = _predicting_with(save_checkpoint(tmp_path / "r101.pth", model))
    # the ResNet-101 is plain PyTorch (refvos.modeling.resnet), as BERT is
    assert _imported_after(code) == []


@pytest.mark.parametrize("atrous", ["taps", "conv"])
def test_the_atrous_form_auto_measures_fastest_is_the_one_that_runs(
    tiny_model, picture, monkeypatch, tmp_path, atrous
):
    import refvos.runtime.precision
    from refvos.modeling.head import AtrousConv2d

    monkeypatch.delenv("REFVOS_PRECISION")
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path))
    seconds = {"fp32": 1.0, "bf16": 0.5, "bf16+taps": 0.3 if atrous == "taps" else 0.7}
    monkeypatch.setattr(
        refvos.runtime.precision,
        "measure",
        lambda workload, names, budget_s=0: {n: seconds[n] for n in names},
    )
    p = Predictor(tiny_model, device="cpu", max_size=64, compile=False, backend="torch")
    c = p.precision_choice
    assert (c.precision, c.atrous, p.runtime_report()["precision"]["atrous"]) == (
        "bf16",
        atrous,
        atrous,
    )
    forms = {m.form for m in p.segmenter.modules() if isinstance(m, AtrousConv2d)}
    assert forms == {atrous}
    assert {m.form for m in p.model.segmenter.modules() if isinstance(m, AtrousConv2d)} == {"conv"}
    # the same masks as the convolution in bf16, but for a few pixels where bf16 rounds apart
    conv = Predictor(tiny_model, device="cpu", max_size=64, compile=False, backend="torch")
    monkeypatch.setitem(seconds, "bf16+taps", 9.0)
    monkeypatch.setenv("REFVOS_CACHE_DIR", str(tmp_path / "other"))
    assert conv.precision_choice.atrous == "conv"
    a, b = p.predict(picture, "the dog"), conv.predict(picture, "the dog")
    assert (a == b).mean() > 0.99
