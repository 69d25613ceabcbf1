"""The Hugging Face folder format: save_pretrained / from_pretrained (ModelHubMixin), a Hub id
read offline from a pre-filled hub cache, no pickle on the way, and refvos export's conversion."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from refvos.checkpoint import load_checkpoint, save_checkpoint
from refvos.cli import main
from refvos.errors import CheckpointError, InputError
from refvos.predictor import Predictor
from tests.helpers import REPO_ROOT, TINY_TEXT_CONFIG, assert_mixed, make_mixed_model, rgb

IMAGES = [rgb(40, 56, seed=s) for s in range(3)]
EXPRESSIONS = ["the red circle on the left", "a blue square"]


def _masks(predictor: Predictor) -> list[np.ndarray]:
    return [p.mask for image in IMAGES for p in predictor.predict_all(image, EXPRESSIONS)]


def test_save_pretrained_round_trip_gives_equal_masks_and_runs_no_pickle(tmp_path, monkeypatch):
    model = make_mixed_model()
    before = Predictor(model, device="cpu", precision="fp32")
    folder = before.save_pretrained(tmp_path / "model")
    assert sorted(os.listdir(folder)) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format"] == "refvos" and config["variant"] == "refvos_lite"
    card = (tmp_path / "model" / "README.md").read_text()
    assert "library_name: refvos" in card and "2010.00263" in card

    def no_pickle(*args, **kwargs):
        raise AssertionError("a pickle was read")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    after = Predictor.from_pretrained(folder, device="cpu", precision="fp32")
    assert after.model.config == model.config
    masks = _masks(before)
    assert_mixed(masks)
    assert all(np.array_equal(a, b) for a, b in zip(masks, _masks(after)))
    # the same folder is a --checkpoint
    assert load_checkpoint(folder).config == model.config


def test_a_broken_folder_is_one_clear_error(tmp_path):
    folder = tmp_path / "model"
    Predictor(make_mixed_model(), device="cpu", precision="fp32").save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps({"variant": "refvos_lite"}))
    with pytest.raises(CheckpointError, match="not a refvos config"):
        load_checkpoint(folder)
    with pytest.raises(InputError, match="is a file"):
        Predictor(make_mixed_model(), device="cpu").save_pretrained(folder / "config.json")


def _fill_hub_cache(cache, repo_id: str, folder) -> None:
    """The hub cache's documented layout: models--ORG--NAME/{refs/main, snapshots/COMMIT/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((folder / name).read_bytes())


def test_from_pretrained_hub_id_offline_from_the_hub_cache(tmp_path):
    """Predictor.from_pretrained("org/name") and refvos predict --checkpoint org/name, in a process
    with HF_HUB_OFFLINE=1 and HF_HUB_CACHE filled in the hub's layout."""
    model = make_mixed_model()
    Predictor(model, device="cpu", precision="fp32").save_pretrained(tmp_path / "model")
    _fill_hub_cache(tmp_path / "hub", "someone/refvos-tiny", tmp_path / "model")
    image = tmp_path / "image.png"
    Image.fromarray(IMAGES[0]).save(image)
    mask_png = tmp_path / "mask_cli.png"
    code = (
        "import sys, numpy as np\n"
        "from refvos import Predictor\n"
        "from refvos.cli import main\n"
        "p = Predictor.from_pretrained('someone/refvos-tiny', device='cpu', precision='fp32')\n"
        f"np.save(sys.argv[1], p.predict({str(image)!r}, {EXPRESSIONS[0]!r}))\n"
        f"sys.exit(main(['predict', '--checkpoint', 'someone/refvos-tiny', '--image', {str(image)!r}, "
        f"'-e', {EXPRESSIONS[0]!r}, '--mask-out', {str(mask_png)!r}, '--device', 'cpu', '--precision', 'fp32']))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    out = tmp_path / "mask.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True, timeout=300)
    expected = Predictor(model, device="cpu", precision="fp32").predict(IMAGES[0], EXPRESSIONS[0])
    assert np.array_equal(np.load(out), expected)
    assert np.array_equal(
        np.asarray(Image.open(mask_png)) > 0, expected
    )  # refvos predict --checkpoint org/name


def test_export_safetensors_converts_a_refvos_checkpoint(tmp_path, capsys):
    model = make_mixed_model()
    pth = save_checkpoint(tmp_path / "m.pth", model)
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(pth),
                "--format",
                "safetensors",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    loaded = load_checkpoint(tmp_path / "out")
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


@pytest.mark.slow
def test_export_safetensors_converts_an_authors_released_file(tmp_path):
    from refvos.modeling import build_model

    torch.manual_seed(0)
    model = build_model(
        "refvos_r101",
        backbone_weights=None,
        text_encoder=None,
        text_config=TINY_TEXT_CONFIG,
        max_tokens=10,
    ).eval()
    bert = {
        k: v for k, v in model.text_encoder.state_dict().items() if k != "embeddings.position_ids"
    }
    released = {
        "model": model.segmenter.state_dict(),
        "bert_model": bert,
        "epoch": 3,
        "args": argparse.Namespace(dataset="davis", model="deeplabv3_resnet101"),
    }
    torch.save(released, tmp_path / "theirs.pth")
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tmp_path / "theirs.pth"),
                "--format",
                "safetensors",
                "--out",
                str(tmp_path / "ours"),
            ]
        )
        == 0
    )
    original, converted = (
        load_checkpoint(tmp_path / "theirs.pth"),
        load_checkpoint(tmp_path / "ours"),
    )
    assert converted.config == original.config and converted.config.truncation == "original"
    assert converted.config.max_tokens == 10
    for k, v in original.state_dict().items():
        assert torch.equal(v, converted.state_dict()[k]), k
