"""Fixtures shared by the whole suite (each defined once, here); helpers are in the tests/helpers package."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
# precision="auto" calibrations go to a temporary cache (inherited by the CLI subprocesses), never
# to the user's ~/.cache; one calibration per workload per test session
_CALIBRATION_CACHE = tempfile.mkdtemp(prefix="refvos-test-cache-")
os.environ["REFVOS_CACHE_DIR"] = _CALIBRATION_CACHE
# precision="auto" resolves to fp32 in tests (results alike on every CPU, no calibration per
# Predictor on a loaded machine); the tests of the calibration itself remove this variable
os.environ["REFVOS_PRECISION"] = "fp32"
atexit.register(shutil.rmtree, _CALIBRATION_CACHE, True)

# (imported after the environment above is set: refvos reads it)
from tests.helpers import IMAGE_SIZE, make_tiny_model, make_tiny_synthetic  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread for the whole session: tiny networks gain nothing from more, and on a
    shared machine oversubscribed threads make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model():
    return make_tiny_model().eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``make_tiny_model()`` saved in the refvos format (read only: tests must not change it)."""
    from refvos.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", make_tiny_model().eval())


@pytest.fixture(scope="session")
def r101_model():
    """The faithful network with random weights (built once per session: it takes seconds)."""
    from refvos.modeling import build_model

    torch.manual_seed(0)
    return build_model("refvos_r101", backbone_weights=None, text_encoder=None).eval()


@pytest.fixture(scope="session")
def refcoco_root(tmp_path_factory) -> Path:
    """A synthetic RefCOCO-layout data set of 20 images of IMAGE_SIZE x IMAGE_SIZE pixels (read only)."""
    from refvos.data import synthetic

    return synthetic.make_refcoco(
        tmp_path_factory.mktemp("refcoco"), num_images=20, image_size=IMAGE_SIZE, seed=0
    )


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> dict[str, Path]:
    """:func:`tests.helpers.make_tiny_synthetic`'s three data sets, written once (read only)."""
    return make_tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(autouse=True)
def openvino_only_where_marked(request, monkeypatch):
    """Tests not marked ``openvino`` see no OpenVINO (``backend="auto"`` chooses among PyTorch's
    precisions), so the process running them never loads it: a process running OpenVINO's
    threads does not survive a fork, and these tests fork DataLoader workers and servers. The
    marked tests run in a pytest process of their own (``make test``)."""
    if request.node.get_closest_marker("openvino") is None:
        from refvos.runtime import openvino_backend

        monkeypatch.setattr(openvino_backend, "available", lambda: False)
