"""Shared fixtures: tiny networks that build in well under a second, offline."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from refvos.modeling.config import BERT_BASE_UNCASED

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# precision="auto" calibrations go to a temporary cache (inherited by the CLI subprocesses), never
# to the user's ~/.cache; one calibration per workload per test session
_CALIBRATION_CACHE = tempfile.mkdtemp(prefix="refvos-test-cache-")
os.environ["REFVOS_CACHE_DIR"] = _CALIBRATION_CACHE
# precision="auto" resolves to fp32 in tests (results alike on every CPU, no calibration per
# Predictor on a loaded machine); the tests of the calibration itself remove this variable
os.environ["REFVOS_PRECISION"] = "fp32"
atexit.register(shutil.rmtree, _CALIBRATION_CACHE, True)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

# A 2-layer, 64-wide BERT with the real vocabulary: shapes of a real encoder at toy size.
TINY_TEXT_CONFIG = {
    **BERT_BASE_UNCASED,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}


@contextlib.contextmanager
def one_torch_thread():
    """One intra-op thread: tiny networks gain nothing from more, and on a shared machine
    oversubscribed threads make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def make_tiny_model(max_tokens: int = 20, seed: int = 0):
    """refvos_lite with random weights and a tiny BERT (for fast CPU tests)."""
    from refvos.modeling import build_model

    torch.manual_seed(seed)
    return build_model(
        "refvos_lite", backbone_weights=None, text_encoder=None, text_config=TINY_TEXT_CONFIG, max_tokens=max_tokens
    )


@pytest.fixture
def tiny_model():
    return make_tiny_model().eval()


@pytest.fixture(scope="session")
def r101_model():
    """The faithful network with random weights (built once per session: it takes seconds)."""
    from refvos.modeling import build_model

    torch.manual_seed(0)
    return build_model("refvos_r101", backbone_weights=None, text_encoder=None).eval()


def make_tiny_synthetic(root: Path) -> dict[str, Path]:
    """The built-in synthetic data at toy size in all three layouts: ``{"refcoco", "davis", "a2d"}`` roots."""
    from refvos.data import synthetic

    return {
        "refcoco": synthetic.make_refcoco(root / "refer", num_images=20, image_size=48),
        "davis": synthetic.make_davis(root / "davis2017", num_videos=5, num_frames=4, image_size=48),
        "a2d": synthetic.make_a2d(root / "a2d", num_videos=5, num_frames=4, image_size=48, annotated_every=2),
    }
