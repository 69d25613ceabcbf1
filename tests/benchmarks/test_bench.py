"""benchmarks/run.py: the headline keys built from the sections' results, and one end-to-end run
at tiny size whose figures are sane and consistent with each other.

No timing or hardware assertions (which precision is faster, speedups, bounds met): speed is
what the script measures, not what the tests check; only structure and consistency.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run

REPO = Path(__file__).resolve().parents[2]
PEERS = ("openvino_fp32", "openvino_bf16", "openvino_int8", "onnxruntime_fp32")


# every headline key a full quick run writes (int8_latency_trained_s: only with an int8 model given)
TOP_KEYS = [
    *(k for k in run.headline_spec(run.QUICK) if k != "int8_latency_trained_s"),
    "load_average_end",
    "duration_s",
]


def _latency_entry(ratio: float) -> dict:
    return {
        "fp32": {"median_s": 0.2},
        "bf16": {"median_s": 0.1},
        "roofline_ratio_fp32": ratio,
        "roofline_ratio_bf16": ratio / 2,
        "roofline_ratio_best": ratio / 3,
        "auto_vs_fastest": 1.0 + ratio,
    }


def test_headline_keys_come_from_the_sections_that_ran():
    first, second = (run.size_key(hw) for hw in run.QUICK["latency_sizes"][:2])
    sections = {
        "matmul": {"fp32": {"gflops_best": 10.0}, "bf16": {"gflops_best": 20.0}},
        "latency": {
            "auto": {"precision": "bf16"},
            first: _latency_entry(2.0),
            second: _latency_entry(3.0),
        },
        "video": None,  # failed or skipped
        "trained": {
            "bf16_vs_fp32": {
                "mean_iou": 0.99,
                "pixel_agreement": 0.999,
                "frames_identical_fraction": 0.5,
            },
            "int8": {"int8_vs_fp32": {"mean_iou": 0.95}},
        },
    }
    result = run.assemble({}, sections, run.QUICK)
    assert result["matmul_gflops_fp32"] == 10.0 and result["matmul_gflops_bf16"] == 20.0
    # the worst size over the latency sizes; the first size's own latency
    assert result["roofline_ratio_fp32"] == 3.0 and result["auto_vs_fastest"] == 4.0
    assert result["latency_r101_fp32_s"] == 0.2 and result["auto_precision"] == "bf16"
    assert (
        result["int8_mask_iou_vs_fp32"] == 0.95 and result["bf16_frames_identical_fraction"] == 0.5
    )
    # a section's result under its key; nothing from a section that did not run
    assert result["trained_agreement"] is sections["trained"] and "video" not in result
    assert not any(k.startswith(("video_", "train_", "onnx_")) for k in result)
    assert set(result) - set(sections) - {"trained_agreement"} <= set(run.headline_spec(run.QUICK))
    targets = run.targets(result)
    assert (
        targets["roofline_ratio_best"]["value"] == 1.0
        and targets["video_speedup_vs_original"]["met"] is None
    )
    # a speedup target reports its measured ceiling and whether the bound lies within it
    capped = run.targets({"video_speedup_vs_original": 1.8, "video_speedup_ceiling": 2.0})
    assert capped["video_speedup_vs_original"]["ceiling"] == 2.0
    assert capped["video_speedup_vs_original"]["bound_within_ceiling"] is False
    assert "ceiling" not in capped["roofline_ratio_best"]
    # only the video section ran (--skip of every other): the int8 and peer keys are left out
    only_video = run.assemble({}, {"matmul": sections["matmul"], "video": None}, run.QUICK)
    assert "int8_mask_iou_vs_fp32" not in only_video and "refvos_over_best_peer" not in only_video


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = {
        k: v for k, v in os.environ.items() if k != "REFVOS_PRECISION"
    }  # auto measured, as for users
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_every_key_is_there_with_sane_values(bench):
    r, _ = bench
    assert r["mode"] == "quick" and r["errors"] == {}
    for key in TOP_KEYS:
        assert key in r, key
    fractions = (
        "bf16_mask_iou_vs_fp32",
        "bf16_mask_pixel_agreement",
        "bf16_frames_identical_fraction",
        "bf16_mask_iou_vs_fp32_r101_untrained",
        "int8_mask_iou_vs_fp32",
        "int8_onnxruntime_mask_iou_vs_fp32",
    )
    precisions = ("auto_precision", "train_precision_refvos")
    assert r["int8_source"] in run.INT8_SOURCES.values()
    for key in TOP_KEYS:
        if key not in ("load_average_end", "int8_source") and key not in fractions + precisions:
            assert _positive(r[key]), (key, r[key])
    for key in precisions:
        assert r[key] in ("fp32", "bf16"), (key, r[key])
    for key in fractions:
        assert 0 <= r[key] <= 1, (key, r[key])
    assert r["bf16_mask_pixel_agreement"] > 0.5
    assert r["onnx_max_abs_logit_diff"] < 1e-2
    r101_onnx = r["onnx"]["refvos_r101"]
    assert (
        r101_onnx["int8"]["file_mb"] < r101_onnx["file_mb"] / 2
    )  # the backbone's weights are int8
    assert set(r["targets"]) == {
        "video_speedup_vs_original",
        "bf16_mask_iou_vs_fp32",
        "roofline_ratio_best",
        "auto_vs_fastest",
        "train_speedup_vs_original",
        "refvos_over_best_peer",
        "int8_mask_iou_vs_fp32",
    }
    for t in r["targets"].values():
        assert isinstance(t["met"], bool)


@pytest.mark.slow
def test_sections_are_consistent(bench):
    r, stdout = bench
    auto = r["latency"]["auto"]
    assert (
        auto["precision"] in ("fp32", "bf16")
        and auto["reason"]
        and r["auto_precision"] == auto["precision"]
    )
    sizes = [e for k, e in r["latency"].items() if k != "auto"]
    assert len(sizes) == 2
    for e in sizes:
        assert e["gflop"] > 0 and e["roofline_fp32_s"] > 0 and e["roofline_bf16_s"] > 0
        # the roofline at the peak measured beside the size's rounds
        assert math.isclose(e["roofline_fp32_s"], e["gflop"] / e["matmul_gflops"]["fp32"])
        assert math.isclose(e["roofline_bf16_s"], e["gflop"] / e["matmul_gflops"]["bf16"])
        assert math.isclose(e["roofline_ratio_fp32"], e["fp32"]["median_s"] / e["roofline_fp32_s"])
        # the fastest variant is the fastest measured, against the fastest precision's roofline
        variants = [k for k in e if isinstance(e[k], dict) and "median_s" in e[k]]
        assert e["best"] in variants
        assert e[e["best"]]["median_s"] == min(e[k]["median_s"] for k in variants)
        assert e["roofline_best_s"] == min(e["roofline_fp32_s"], e["roofline_bf16_s"])
        assert math.isclose(
            e["roofline_ratio_best"], e[e["best"]]["median_s"] / e["roofline_best_s"]
        )
        # the variant auto runs is the path it chose: refvos's OpenVINO backend or PyTorch's
        expected = (
            ("openvino_" if auto.get("backend") == "openvino" else "")
            + auto["precision"]
            + ("_taps" if auto["atrous"] == "taps" else "")
        )
        assert e["auto_variant"] == expected and e["auto_vs_fastest"] >= 1.0
        assert ("openvino_fp32" in e) == ("openvino_bf16" in e)
    assert r["roofline_ratio_best"] == max(e["roofline_ratio_best"] for e in sizes)
    assert r["auto_vs_fastest"] == max(e["auto_vs_fastest"] for e in sizes)
    v = r["video"]
    assert v["frames"] >= 2 and v["refvos_precision"] == v["refvos_precision_choice"][
        "precision"
    ] in ("bf16", "fp32")
    # the masks compared are not trivial: the fitted head finds the moving object
    assert 0 < v["bf16_vs_fp32"]["reference_foreground_fraction"] < 1
    assert v["head_calibration"]["fit_iou_with_object"] > 0.5
    # the fast path in fp32 reproduces the original pipeline
    assert v["refvos_fp32_vs_original"]["mean_iou"] > 0.99
    # the ceiling: the original's median time over the products inside the map at the median
    # of the matmul peaks measured around the rounds
    assert 0 < v["gflop_per_frame"]["in_map"] < v["gflop_per_frame"]["all"]
    t = r["train"]
    for section, gflop, original in (
        (v, v["frames"] * v["gflop_per_frame"]["in_map"], v["original_s"]),
        (t, t["gflop_per_step_in_map"], t["original"]["step_s"]),
    ):
        ceiling = section["ceiling"]
        assert len(ceiling["matmul_gflops_measured"]) == original["n"] + 1
        assert ceiling["matmul_gflops"] == run.peak_median(*ceiling["matmul_gflops_measured"])
        floor = ceiling["floor"]
        assert floor["best_s"] == min(floor["fp32_s"], floor["bf16_s"])
        assert math.isclose(floor["fp32_s"], gflop / ceiling["matmul_gflops"]["fp32"])
        assert math.isclose(
            section["speedup_ceiling"], original["median_s"] / floor["best_s"], rel_tol=1e-4
        )
    assert r["video_speedup_ceiling"] == v["speedup_ceiling"]
    assert r["train_speedup_ceiling"] == t["speedup_ceiling"]
    # the speedup at refvos's own convolution time: the original's step over the convolutions'
    # share of one profiled refvos step
    profiled = t["refvos_profile"]
    assert 0 < profiled["convolution_self_s"] < profiled["wall_total_self_s"]
    assert math.isclose(
        t["speedup_if_only_convolutions"],
        t["original"]["step_s"]["median_s"] / profiled["convolution_self_s"],
        rel_tol=1e-4,
    )
    assert r["train_speedup_if_only_convolutions"] == t["speedup_if_only_convolutions"]
    assert r["targets"]["video_speedup_vs_original"]["ceiling"] == v["speedup_ceiling"]
    for name in ("original", "refvos", "refvos_fp32"):
        assert _positive(t[name]["images_per_s"]) and _positive(t[name]["peak_memory"]["mb"])
        assert all(math.isfinite(x) for x in t[name]["losses"])
    # the agreement figure comes from a network the demo's recipe trained, on clips it never saw
    a = r["trained_agreement"]
    assert a["frames"] == len(a["expressions"]) * 3 and 0 <= a["demo_overall_iou"] <= 1
    assert r["bf16_mask_iou_vs_fp32"] == a["bf16_vs_fp32"]["mean_iou"]
    # ... in both forms of the atrous convolutions, the bound on the worse
    forms = a["bf16_vs_fp32_by_atrous"]
    assert (
        set(forms) == {"conv", "taps"}
        and a["bf16_vs_fp32"] == forms[a["bf16_vs_fp32_worst_atrous"]]
    )
    assert a["bf16_vs_fp32"]["mean_iou"] == min(f["mean_iou"] for f in forms.values())
    assert r["int8_mask_iou_vs_fp32"] == a["int8"]["int8_vs_fp32"]["mean_iou"]
    assert (
        a["int8"]["onnx_fp32_vs_fp32"]["pixel_agreement"] > 0.99
    )  # the exported fp32 graph is the network
    assert t["refvos_precision"] == r["train_precision_refvos"]
    assert r["profile"]["bf16"]["top_self"]
    assert "| target |" in stdout and "video_speedup_vs_original" in stdout


@pytest.mark.slow
def test_peers_section_is_consistent(bench):
    r, stdout = bench
    p = r["peers"]
    variants = p["trained"]["variants"]
    assert (
        {"refvos_default", "onnxruntime_fp32"}
        <= set(variants)
        <= {"refvos_default", "refvos_int8", *PEERS}
    )
    for v in variants.values():
        assert 0 <= v["agreement"]["mean_iou"] <= 1 and _positive(v["latency"]["median_s"])
    # the exported graph in ONNX Runtime is the network: its masks are the fp32 Predictor's
    assert variants["onnxruntime_fp32"]["agreement"]["pixel_agreement"] > 0.99
    assert p["accurate"] == sorted(
        k for k, v in variants.items() if v["agreement"]["mean_iou"] >= 0.98
    )
    latency = p["r101"]["latency"]
    assert set(latency) == set(variants) - {"refvos_int8"}
    best = p["r101"]["best_accurate_peer"]
    accurate_peers = [k for k in PEERS if k in p["accurate"] and k in latency]
    assert best == min(accurate_peers, key=lambda k: latency[k]["median_s"])
    assert (
        r["refvos_over_best_peer"]
        == p["refvos_over_best_peer"]
        == latency["refvos_default"]["median_s"] / latency[best]["median_s"]
    )
    several = p["r101"]["several_expressions"]
    n = several["expressions"]
    assert n > 1 and _positive(several["refvos_default"]["median_s"])
    assert several["best_accurate_peer_s"] == n * latency[best]["median_s"]
    assert several["refvos_over_best_peer"] == (
        several["refvos_default"]["median_s"] / several["best_accurate_peer_s"]
    )
    choice = p["r101"]["refvos_default_choice"]
    assert choice["backend"] in ("torch", "openvino") and choice["reason"]
    assert "refvos_over_best_peer" in stdout


@pytest.mark.slow
def test_agreement_section_uses_a_finished_demo_run(tmp_path, monkeypatch):
    """``--demo-dir``: the agreement section loads that run's network and reports its figures,
    and trains nothing itself."""
    import refvos.demo

    demo = refvos.demo.run_demo(tmp_path / "demo", preset="tiny", seed=0)
    monkeypatch.setattr(
        refvos.demo, "run_demo", lambda *a, **k: pytest.fail("trained a second network")
    )
    cfg = {**run.QUICK, "demo_dir": str(tmp_path / "demo")}
    out = run.bench_trained_agreement(cfg, run.torch.device("cpu"), tmp_path / "work")
    assert out["demo_overall_iou"] == demo["overall_iou"]
    assert "'tiny'" in out["model"]
    assert out["frames"] == cfg["agreement_clips"] * cfg["agreement_frames"]


def test_a_ceiling_uses_the_median_of_the_peaks_around_the_rounds():
    peaks = [
        {"fp32": 100.0, "bf16": 50.0},
        {"fp32": 80.0, "bf16": 400.0},
        {"fp32": 90.0, "bf16": 200.0},
    ]
    assert run.peak_median(*peaks) == {"fp32": 90.0, "bf16": 200.0}
    ceiling = run.speedup_ceiling(int(1e11), [4.0, 2.0], peaks)
    # 1e11 FLOPs at the median bf16 peak, 200 GFLOP/s, take 0.5 s; the original's median is 3 s
    assert ceiling["floor"]["best_s"] == 0.5 and ceiling["speedup_ceiling"] == 6.0


def test_peak_now_measures_again_only_the_precisions_near_the_best(monkeypatch):
    measured = []

    def fake(dtype, n, repeats, device, warmup):
        measured.append(str(dtype))
        return {"gflops_best": 123.0}

    monkeypatch.setattr(run.machine, "matmul_gflops", fake)
    # bf16 at a tenth of fp32 at the start (emulated): it keeps its start peak
    assert run.peak_now(run.QUICK, "cpu", {"fp32": 100.0, "bf16": 10.0}) == {
        "fp32": 123.0,
        "bf16": 10.0,
    }
    assert measured == ["torch.float32"]
    measured.clear()
    assert run.peak_now(run.QUICK, "cpu", {"fp32": 100.0, "bf16": 60.0}) == {
        "fp32": 123.0,
        "bf16": 123.0,
    }
    assert measured == ["torch.float32", "torch.bfloat16"]


def test_a_variant_clearly_slower_at_one_size_is_not_run_at_the_next(monkeypatch):
    import torch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.segmenter = torch.nn.Conv2d(3, 2, 1)

    first_round = {
        "fp32": 1.0,
        "bf16": 9.0,
        "bf16_taps": 9.0,
        "fp32_nchw": 1.2,
        "bf16_unfolded": 3.0,
    }
    built = []
    monkeypatch.setattr(
        run, "auto_choice", lambda *a: {"precision": "fp32", "backend": "torch", "atrous": "conv"}
    )
    monkeypatch.setattr(run, "openvino_available", lambda device: False)
    monkeypatch.setattr(run, "peak_now", lambda *a: {"fp32": 10.0, "bf16": 20.0})
    monkeypatch.setattr(run.workloads, "count_flops", lambda *a: 10**9)

    def runner(seg, h, w, text, prec, cl, device, fold, comp, atrous):
        built.append((h, w, prec, atrous, cl))
        return lambda: None

    monkeypatch.setattr(run.workloads, "frame_runner", runner)
    monkeypatch.setattr(
        run.machine,
        "alternated_rounds",
        lambda calls, rounds, device, before: {name: [first_round[name]] for name in calls},
    )
    cfg = {**run.QUICK, "compiled_latency": False}
    out = run.bench_latency(Model(), cfg, "cpu", torch.zeros(1, 4), {"fp32": 10.0, "bf16": 20.0})
    first, second = (run.size_key(hw) for hw in cfg["latency_sizes"])
    assert "bf16_taps" in out[first] and "not_run" not in out[first]
    # 9x the fastest at the first size: not run at the second; fp32 and bf16 always are
    assert "bf16_taps" not in out[second] and set(out[second]["not_run"]) == {"bf16_taps"}
    assert "bf16" in out[second] and out[second]["roofline_ratio_bf16"] > 0
    later = tuple(cfg["latency_sizes"][1])
    assert [a for h, w, _, a, _ in built if (h, w) == later] == ["conv", "conv"]  # fp32, bf16
