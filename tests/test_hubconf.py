"""hubconf.py: torch.hub.load of a local clone builds a model; pretrained= goes through the
registry (a loopback-free local mirror folder here)."""

from __future__ import annotations

import numpy as np
import torch

from refvos.checkpoint import save_checkpoint
from refvos.modeling import RefVOS
from refvos.predictor import Predictor
from tests.helpers import REPO_ROOT, make_mixed_model, rgb


def test_torch_hub_load_local_builds_refvos_lite():
    model = torch.hub.load(str(REPO_ROOT), "refvos_lite", source="local")
    assert (
        isinstance(model, RefVOS) and model.config.variant == "refvos_lite" and not model.training
    )


def test_torch_hub_load_pretrained_by_name(tmp_path, monkeypatch):
    model = make_mixed_model()
    (tmp_path / "mirror").mkdir()
    save_checkpoint(tmp_path / "mirror" / "refvos-refcoco.pth", model)
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", str(tmp_path / "mirror"))
    loaded = torch.hub.load(str(REPO_ROOT), "refvos_r101", source="local", pretrained="refcoco")
    assert (tmp_path / "cache" / "checkpoints" / "refvos-refcoco.pth.sha256").is_file()
    image = rgb(40, 56)
    masks = [
        Predictor(m, device="cpu", precision="fp32").predict(image, "the red circle")
        for m in (model, loaded)
    ]
    assert np.array_equal(*masks)
