"""benchmarks/optimizer_step.py at a small BERT: refvos's optimiser is the fused one and makes
the per-tensor loop's update (no timing is asserted)."""

import json

import pytest

from benchmarks.optimizer_step import OPTIMIZERS, main


@pytest.mark.slow
def test_optimizer_step_compares_the_same_update(tmp_path):
    out = tmp_path / "opt.json"
    assert main(["--quick", "--steps", "2", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    for name in OPTIMIZERS:
        entry = r[name]
        assert entry["fused"] is True
        assert entry["parameters_m"] > 40  # ResNet-101 and the head train
        assert entry["loop_s"]["n"] == entry["refvos_s"]["n"] == 2
        assert entry["max_abs_param_diff"] <= 1e-6
        assert entry["refvos_over_loop"] == pytest.approx(
            entry["refvos_s"]["median_s"] / entry["loop_s"]["median_s"]
        )
