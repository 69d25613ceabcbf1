"""benchmarks/video_cli.py runs end to end at toy size and its figures are consistent with each
other (no timing is asserted: what the script measures is for the benchmark's reader)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_video_cli_benchmark_writes_consistent_figures(tmp_path):
    out = tmp_path / "video_cli.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "video_cli.py"),
            "--out",
            str(out),
            "--frames",
            "2",
            "5",
            "--size",
            "48",
            "64",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert set(r["cli"]) == set(r["iter_video_s"]) == {"2", "5"}
    for run in r["cli"].values():
        assert run["wall_s"] > 0 and run["peak_rss_mb"] > 50  # a Python process with torch loaded
    per_frame_cli = (r["cli"]["5"]["wall_s"] - r["cli"]["2"]["wall_s"]) / 3
    assert r["cli_s_per_frame"] == pytest.approx(per_frame_cli, abs=1e-4)
    per_frame_lib = (r["iter_video_s"]["5"] - r["iter_video_s"]["2"]) / 3
    assert r["iter_video_s_per_frame"] == pytest.approx(per_frame_lib, abs=2e-3)
    if r["iter_video_s_per_frame"] > 0:
        assert r["cli_over_iter_video"] == pytest.approx(
            r["cli_s_per_frame"] / r["iter_video_s_per_frame"], rel=0.01
        )
    else:
        assert r["cli_over_iter_video"] is None
    assert r["size"] == [48, 64] and r["precision"] == "fp32"


def test_video_cli_benchmark_refuses_a_bad_frame_span():
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "video_cli.py"), "--frames", "5", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 2 and "SHORT < LONG" in proc.stderr
