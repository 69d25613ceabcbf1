"""Start-up of a single prediction: the Predictor imports only what the checkpoint's network
needs: neither transformers (the tokenizer is the ``tokenizers`` library, BERT is plain PyTorch)
nor timm, torchvision or ``torch._dynamo`` (ResNet-101 and EfficientNet-Lite0 are plain PyTorch
with the parameter names of torchvision's and timm's networks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from refvos.checkpoint import save_checkpoint
from tests.helpers import REPO_ROOT, TINY_TEXT_CONFIG, make_tiny_model

WATCHED = ("transformers", "timm", "torchvision", "torch._dynamo", "matplotlib", "scipy", "skimage")


def _imported_after(code: str) -> list[str]:
    """The :data:`WATCHED` packages in ``sys.modules`` after running ``code`` in a fresh Python."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    report = f"import json, sys\nprint(json.dumps(sorted(m for m in {WATCHED!r} if m in sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", code + "\n" + report], capture_output=True, text=True,
                          env=env, timeout=300)
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

    model = build_model("refvos_r101", backbone_weights=None, text_encoder=None, text_config=TINY_TEXT_CONFIG)
    code = _predicting_with(save_checkpoint(tmp_path / "r101.pth", model))
    # the ResNet-101 is plain PyTorch (refvos.modeling.resnet), as BERT is
    assert _imported_after(code) == []
