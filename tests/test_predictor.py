import numpy as np
import pytest
import torch
from PIL import Image

from refvos import Predictor
from refvos.errors import InputError
from refvos.imaging import to_tensor
from refvos.tokenization import get_tokenizer


def _original_pipeline_mask(model, image: np.ndarray, expression: str) -> np.ndarray:
    """The original test.py: own resolution, ImageNet normalisation, 20 tokens, argmax."""
    ids, mask = get_tokenizer().encode(expression, model.config.max_tokens)
    with torch.no_grad():
        out = model(to_tensor(image)[None], ids, mask)
    return out.argmax(1)[0].numpy().astype(bool)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8)


def test_predict_equals_original_pipeline_in_fp32(tiny_model, photo):
    p = Predictor(tiny_model, device="cpu", precision="fp32")
    got = p.predict(photo, "the man on the left")
    assert got.dtype == bool and got.shape == (45, 61)
    np.testing.assert_array_equal(got, _original_pipeline_mask(tiny_model, photo, "the man on the left"))


def test_several_expressions_reuse_the_image_features(tiny_model, photo, monkeypatch):
    p = Predictor(tiny_model, device="cpu", precision="fp32")
    calls = []
    backbone_forward = tiny_model.segmenter.backbone.forward
    monkeypatch.setattr(tiny_model.segmenter.backbone, "forward", lambda x: calls.append(1) or backbone_forward(x))
    results = p.predict_all(["the cat", "a dog on the right"], photo)
    assert len(calls) == 1 and len(results) == 2
    for r in results:
        np.testing.assert_array_equal(r.mask, _original_pipeline_mask(tiny_model, photo, r.expression))
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


def test_max_size_caps_the_processed_image_but_returns_full_size(tiny_model, photo, monkeypatch):
    p = Predictor(tiny_model, device="cpu", max_size=32)
    assert max(p.preprocess(photo).shape[-2:]) == 32
    assert p.predict(photo, "the dog").shape == photo.shape[:2]


def test_predict_video_encodes_the_sentence_once(tiny_model, monkeypatch):
    frames = [np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(5)]
    p = Predictor(tiny_model, device="cpu", precision="fp32")
    calls = []
    encode = tiny_model.encode_text
    monkeypatch.setattr(tiny_model, "encode_text", lambda *a: calls.append(1) or encode(*a))
    masks = p.predict_video(frames, "the square moving left", batch_size=2)
    assert len(calls) == 1 and len(masks) == 5
    for frame, mask in zip(frames, masks):
        np.testing.assert_array_equal(mask, _original_pipeline_mask(tiny_model, frame, "the square moving left"))


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
