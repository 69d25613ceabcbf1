"""Start-up of a single prediction: the Predictor imports only what the checkpoint's network
needs -- never transformers (the tokenizer is the ``tokenizers`` library, BERT is plain PyTorch),
and torchvision / timm only when the network is built from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from refvos.checkpoint import save_checkpoint
from tests.helpers import REPO_ROOT, make_tiny_model

WATCHED = ("transformers", "timm", "torchvision", "matplotlib", "scipy", "skimage")


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


def test_loading_a_checkpoint_and_predicting_imports_no_transformers(tmp_path):
    path = save_checkpoint(tmp_path / "tiny.pth", make_tiny_model())
    code = (
        "import numpy as np\n"
        "from refvos.predictor import Predictor\n"
        f"p = Predictor.from_checkpoint({str(path)!r}, device='cpu', precision='fp32', compile=False)\n"
        "mask = p.predict(np.zeros((40, 48, 3), np.uint8), 'the red circle on the left')\n"
        "assert mask.shape == (40, 48)\n"
    )
    # refvos_lite's backbone is timm's (which imports torchvision); no transformers anywhere
    assert _imported_after(code) == ["timm", "torchvision"]
