"""benchmarks/gpu.py runs end to end on the CPU at small sizes (CI keeps the CUDA script
working): every section and key there, consistent; no timing is asserted."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "REFVOS_PRECISION": "fp32"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu.py"),
            "--device",
            "cpu",
            "--small",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["errors"] == {} and r["device"] == "cpu" and r["config"]["model"] == "refvos_lite"
    t = r["train"]
    for name in ("original_fp32", "refvos_fp32", "refvos_bf16"):
        assert _positive(t[name]["images_per_s"]) and _positive(t[name]["peak_memory"]["mb"])
    assert t["original_fp32"]["speedup_vs_original"] == 1.0
    i = r["inference"]
    assert (
        i["eager"]["compile"]["compiled"] is False and i["compiled"]["compile"]["setting"] is True
    )
    assert _positive(i["eager"]["latency"]["median_s"]) and _positive(
        i["compiled"]["latency"]["median_s"]
    )
    assert (
        r["torchrun"]["returncode"] == 0
        and r["torchrun"]["backend"] == "gloo"
        and r["torchrun"]["done"]
    )
    assert "torchrun --nproc_per_node 1: exit 0" in proc.stdout
