"""benchmarks/startup.py runs end to end (one repeat, tiny model) and writes every phase.

No timing assertions: only structure and consistency of what it measured.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PHASES = (
    "python_start_s",
    "torch_import_s",
    "help_cli_s",
    "predict_cli_s",
    "import_s",
    "load_s",
    "predict_s",
    "predict_again_s",
)


@pytest.mark.slow
def test_startup_benchmark_writes_every_phase(tmp_path):
    out = tmp_path / "startup.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "startup.py"), "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["phases"]) == set(PHASES)
    for name in PHASES:
        phase = result["phases"][name]
        assert len(phase["samples_s"]) == result["repeats"] == 1
        assert 0 < phase["min_s"] <= phase["median_s"]
    median = {k: v["median_s"] for k, v in result["phases"].items()}
    share = median["predict_s"] / (median["import_s"] + median["load_s"] + median["predict_s"])
    assert result["work_share"] == pytest.approx(share, abs=1e-3)
    # the default model is refvos_lite: plain PyTorch, no model library imported
    assert result["modules_imported_by_predict"] == ["tokenizers", "torch"]
    assert "import_s" in proc.stdout and str(out) in proc.stdout
