"""benchmarks/compile_head_train.py runs end to end at toy size: both modes train the same steps
(same losses), and its ratio is the one of its medians (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_compile_head_train_benchmark_compares_like_with_like(tmp_path):
    out = tmp_path / "compile.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "compile_head_train.py"),
            "--out",
            str(out),
            "--steps",
            "3",
            "--size",
            "32",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    eager, compiled = r["eager"], r["compiled"]
    assert eager["steps"] == compiled["steps"] == len(eager["losses"]) == 3
    # the same network, batches and optimiser steps: the compiled step computes the same losses
    assert compiled["losses"] == pytest.approx(eager["losses"], rel=1e-3, abs=1e-4)
    assert r["compiled_over_eager"] == pytest.approx(
        compiled["median_step_s"] / eager["median_step_s"], abs=2e-3
    )
    assert r["precision"] == "fp32" and r["size"] == 32 and str(out) in proc.stdout
