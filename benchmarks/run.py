"""refvos benchmark: the machine's limit, per-frame latency against the roofline, the video path
and the training step against a faithful re-enactment of the original, ONNX Runtime.

    .venv/bin/python -m benchmarks.run --out bench_out/bench.json      # full (make bench)
    .venv/bin/python -m benchmarks.run --quick --out /tmp/bench.json   # tiny sizes, for tests

Writes the JSON atomically and prints a table. Other processes' load skews timings: the
compared variants run alternately in one process, medians are reported and the load average
is recorded at the start and the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import machine, peers, workloads  # noqa: E402
from benchmarks.original import OriginalTrainStep, original_video  # noqa: E402
from refvos.modeling.config import BERT_BASE_UNCASED  # noqa: E402

TARGETS = {
    "video_speedup_vs_original": (">=", 2.5),
    "bf16_mask_iou_vs_fp32": (">=", 0.98),
    "roofline_ratio_best": ("<=", 1.15),
    "auto_vs_fastest": ("<=", 1.05),
    "train_speedup_vs_original": (">=", 1.5),
    "refvos_over_best_peer": ("<=", 1.0),
    "int8_mask_iou_vs_fp32": (">=", 0.98),
}

FULL = {
    "latency_sizes": [(480, 480), (480, 854)],  # (H, W)
    "latency_repeats": 3,
    "nchw_sizes": [(480, 480)],
    "matmul_n": 4096,
    "matmul_repeats": 8,
    "video_frames": 30,
    "video_size": (160, 288),
    "video_rounds": 2,
    "video_batch": 4,
    "calib_frames": 3,
    "train_batch": 2,
    "train_size": 256,
    "train_repeats": 2,
    "lite_repeats": 5,
    "onnx_size": (480, 480),
    "onnx_repeats": 2,
    "lite_onnx_repeats": 5,
    "profile_size": (480, 480),
    "demo_preset": "default",
    "agreement_clips": 4,
    "agreement_frames": 12,
    "compiled_latency": True,
    "peers_size": (480, 480),
    "peers_repeats": 5,
}
QUICK = {
    "latency_sizes": [(64, 64), (64, 112)],
    "latency_repeats": 1,
    "nchw_sizes": [(64, 64)],
    "matmul_n": 512,
    "matmul_repeats": 3,
    "video_frames": 4,
    "video_size": (64, 96),
    "video_rounds": 1,
    "video_batch": 2,
    "calib_frames": 2,
    "train_batch": 2,
    "train_size": 64,
    "train_repeats": 1,
    "lite_repeats": 1,
    "onnx_size": (64, 64),
    "onnx_repeats": 1,
    "lite_onnx_repeats": 1,
    "profile_size": (64, 64),
    "demo_preset": "tiny",
    "agreement_clips": 1,
    "agreement_frames": 3,
    "compiled_latency": False,
    "peers_size": (64, 64),
    "peers_repeats": 1,
}

# a 2-layer, 64-wide BERT (BERT-base's other settings): the quick run's text encoder
QUICK_TEXT_CONFIG = {
    **BERT_BASE_UNCASED,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}
EXPRESSION = "the red ball moving to the right"


def size_key(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"  # W x H, as DAVIS's 854x480


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sections


def bench_matmul(cfg, device) -> dict[str, Any]:
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        out[name] = machine.matmul_gflops(dtype, cfg["matmul_n"], cfg["matmul_repeats"], device)
    return out


def openvino_available(device) -> bool:
    """Whether refvos's OpenVINO backend can run here (the extra installed, a CPU device)."""
    from refvos.runtime import openvino_backend

    return torch.device(device).type == "cpu" and openvino_backend.available()


def auto_choice(model, device) -> dict[str, Any]:
    """What ``Predictor(model, precision="auto")`` chooses on this machine, and why."""
    from refvos import Predictor

    predictor = Predictor(model, device=device, precision="auto", compile=False)
    choice = predictor.precision_choice.to_json()
    del predictor
    model.segmenter.to(memory_format=torch.contiguous_format)
    return choice


def bench_latency(
    model, cfg, device, text: torch.Tensor, matmul_peak: dict[str, float]
) -> dict[str, Any]:
    """Per-frame latency (batch 1) of the segmentation network per size, variants alternated.

    Variants: ``fp32`` / ``bf16`` as the Predictor runs them (channels-last; bf16 on the BN-folded
    copy), ``bf16_taps`` (the ASPP's atrous convolutions tap by tap, the form ``auto`` also
    times), ``*_compiled`` the same through torch.compile (full run), ``openvino_fp32`` /
    ``openvino_bf16`` / ``openvino_bf16_taps`` (refvos's OpenVINO backend, where the extra is installed), ``fp32_nchw``
    (the original's layout) and ``bf16_unfolded`` at the first size. Per size: each precision's
    roofline (FLOPs over its matmul peak around the size's rounds, :func:`peak_median`), ``best``
    (the fastest variant), ``roofline_ratio_best`` (its latency over the roofline of the fastest
    precision measured) and ``auto_vs_fastest`` (the variant
    ``auto`` runs over the fastest). A variant other than ``fp32``, ``bf16`` and ``auto``'s that
    took :data:`refvos.runtime.CLEARLY_SLOWER` times the fastest in a size's first round is not
    run at the later sizes (``not_run`` says why: it cannot be the fastest there either)."""
    from refvos.runtime import CLEARLY_SLOWER, clearly_slower

    seg = model.segmenter.eval().to(device)
    auto = auto_choice(model, device)
    results: dict[str, Any] = {"auto": auto}
    taps = "_taps" if auto.get("atrous") == "taps" else ""
    if auto.get("backend") == "openvino":
        auto_variant = f"openvino_{auto['precision']}{taps}"
    else:
        auto_variant = auto["precision"] + taps + ("_compiled" if cfg["compiled_latency"] else "")
    # variants clearly slower than the fastest at an earlier size (bf16 emulated): not run again
    # (fp32, bf16 and auto's variant always are: the rooflines and auto_vs_fastest need them)
    not_run: dict[str, str] = {}
    for hw in cfg["latency_sizes"]:
        h, w = hw
        flops = workloads.count_flops(
            seg.to(memory_format=torch.contiguous_format), h, w, text.shape[1]
        )
        # as the Predictor runs them: fp32 channels-last; bf16 channels-last on the BN-folded copy
        # (precision, channels-last, BN folded, compiled, atrous form)
        variants = {
            "fp32": ("fp32", True, False, False, "conv"),
            "bf16": ("bf16", True, True, False, "conv"),
            "bf16_taps": ("bf16", True, True, False, "taps"),
        }
        if cfg["compiled_latency"]:
            variants["fp32_compiled"] = ("fp32", True, False, True, "conv")
            variants["bf16_compiled"] = ("bf16", True, True, True, "conv")
            variants["bf16_taps_compiled"] = ("bf16", True, True, True, "taps")
        if hw in [tuple(s) for s in cfg["nchw_sizes"]]:
            variants["fp32_nchw"] = ("fp32", False, False, False, "conv")  # the original's layout
            variants["bf16_unfolded"] = ("bf16", True, False, False, "conv")
        if openvino_available(device):
            variants["openvino_fp32"] = ("fp32", False, False, False, "conv")
            variants["openvino_bf16"] = ("bf16", False, False, False, "conv")
            variants["openvino_bf16_taps"] = ("bf16", False, False, False, "taps")
        skipped = {name: not_run[name] for name in variants if name in not_run}
        for name in skipped:
            del variants[name]
        runners = {}
        compile_s = {}
        for name, (
            prec,
            cl,
            fold,
            comp,
            atrous,
        ) in variants.items():  # warm-up (oneDNN primitives, compilation)
            if name.startswith("openvino_"):
                runners[name] = workloads.openvino_frame_runner(seg, h, w, text, prec, atrous)
            else:
                runners[name] = workloads.frame_runner(
                    seg, h, w, text, prec, cl, device, fold, comp, atrous
                )
            runners[name]()
            if comp:
                compile_s[name] = runners[name].runner.report()

        formats = {
            name: torch.channels_last if v[1] else torch.contiguous_format
            for name, v in variants.items()
        }
        before = peak_now(cfg, device, matmul_peak)
        times = machine.alternated_rounds(
            runners,
            cfg["latency_repeats"],
            device,
            # the unfolded variants share seg: each in its format
            before=lambda name, formats=formats: seg.to(memory_format=formats[name]),
        )
        peak = peak_median(before, peak_now(cfg, device, matmul_peak))
        entry: dict[str, Any] = {"gflop": flops / 1e9, "matmul_gflops": peak}
        for name in variants:
            entry[name] = machine.summary(times[name])
        if skipped:
            entry["not_run"] = skipped
        slow = clearly_slower({name: times[name][0] for name in variants})
        for name in slow - {"fp32", "bf16", auto_variant}:
            not_run[name] = f"{CLEARLY_SLOWER:g}x the fastest at {size_key(hw)}"
        if compile_s:
            entry["compile"] = compile_s
        roofline = arithmetic_floor(flops, peak)
        for k in ("fp32", "bf16", "best"):
            entry[f"roofline_{k}_s"] = roofline[f"{k}_s"]
        entry["roofline_ratio_fp32"] = entry["fp32"]["median_s"] / entry["roofline_fp32_s"]
        entry["roofline_ratio_bf16"] = entry["bf16"]["median_s"] / entry["roofline_bf16_s"]
        entry["achieved_gflops_fp32"] = flops / entry["fp32"]["median_s"] / 1e9
        entry["achieved_gflops_bf16"] = flops / entry["bf16"]["median_s"] / 1e9
        entry["best"] = min(variants, key=lambda k: entry[k]["median_s"])
        entry["roofline_ratio_best"] = entry[entry["best"]]["median_s"] / entry["roofline_best_s"]
        # auto's steady state on a video: its backend and precision, compiled where compiled
        # variants ran (torch.compile is PyTorch's; OpenVINO compiles its graphs in any case)
        entry["auto_variant"] = auto_variant
        entry["auto_vs_fastest"] = (
            entry[entry["auto_variant"]]["median_s"] / entry[entry["best"]]["median_s"]
        )
        results[size_key(hw)] = entry
        log(
            f"latency {size_key(hw)}: "
            + ", ".join(f"{k} {entry[k]['median_s']:.3f}s" for k in variants)
        )
    seg.to(memory_format=torch.contiguous_format)
    return results


def latency_sizes(lat: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-size entries of :func:`bench_latency`'s result."""
    return [e for k, e in lat.items() if k != "auto"]


def arithmetic_floor(flops: int, peak: dict[str, float]) -> dict[str, float]:
    """Seconds that ``flops`` take at the matmul peak of each precision (``fp32``, ``bf16``) and
    at the faster (``best``): no path that forms every product runs faster."""
    floor = {k: flops / (peak[k] * 1e9) for k in ("fp32", "bf16")}
    return {**{f"{k}_s": v for k, v in floor.items()}, "best_s": min(floor.values())}


# a precision whose peak at the start of the run is below this fraction of the best precision's
# is not measured again beside the rounds: it cannot set a roofline or a floor (and emulated bf16
# takes seconds a matmul)
REMEASURE_FRACTION = 0.5


def peak_now(cfg, device, start: dict[str, float]) -> dict[str, float]:
    """The matmul peak (GFLOP/s) per precision, measured now (best of 2), for the precisions
    whose ``start`` peak (the run's first, :func:`bench_matmul`) is within
    :data:`REMEASURE_FRACTION` of the best; the others keep their ``start`` peak."""
    best = max(start.values())
    return {
        name: machine.matmul_gflops(dtype, cfg["matmul_n"], 2, device, warmup=0)["gflops_best"]
        if start[name] >= REMEASURE_FRACTION * best
        else start[name]
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }


def peak_median(*peaks: dict[str, float]) -> dict[str, float]:
    """Per precision, the median of ``peaks`` (:func:`peak_now` around a section's timed rounds):
    the machine's speed while they ran, for this guest's speed drifts by tens of percent within
    minutes (the run's first peak, or the highest of a few, would not be the speed the rounds
    met)."""
    return {k: statistics.median(p[k] for p in peaks) for k in ("fp32", "bf16")}


def speedup_ceiling(
    flops: int, original_s: list[float], peaks: list[dict[str, float]]
) -> dict[str, Any]:
    """The original's median time over the arithmetic floor of ``flops`` at the median of
    ``peaks`` (:func:`peak_now` before the first timed round and after each;
    :func:`peak_median`, :func:`arithmetic_floor`)."""
    peak = peak_median(*peaks)
    floor = arithmetic_floor(flops, peak)
    return {
        "matmul_gflops": peak,
        "matmul_gflops_measured": peaks,
        "floor": floor,
        "speedup_ceiling": statistics.median(original_s) / floor["best_s"],
    }


def bench_video(model, cfg, device, workdir: Path, matmul_peak: dict[str, float]) -> dict[str, Any]:
    """refvos's Predictor.predict_video vs the original per-frame pipeline, alternated.
    ``speedup_ceiling``: the original's time over the arithmetic floor of the frames (their
    convolutions' products inside the map at the matmul peak: :func:`speedup_ceiling`)."""
    from refvos import Predictor
    from refvos.tokenization import get_tokenizer

    h, w = cfg["video_size"]
    frames, obj_masks = workloads.make_clip(cfg["video_frames"], h, w)
    paths = workloads.write_frames(frames, workdir / "clip")
    ids, mask = get_tokenizer().encode([EXPRESSION], model.config.max_tokens)
    with torch.no_grad():
        text = model.encode_text(ids, mask).float()
    n_cal = cfg["calib_frames"]
    pick = np.linspace(0, len(frames) - 1, n_cal).round().astype(int)
    calibration = workloads.fit_head(
        model, [frames[i] for i in pick], [obj_masks[i] for i in pick], text
    )
    log(f"head fitted: {calibration}")

    original_model = model.to(device).eval()  # NCHW, fp32
    fast_model = copy.deepcopy(model)
    predictor = Predictor(fast_model, device=device, precision="auto", channels_last=True)
    fp32_predictor = None
    times: dict[str, list[float]] = {"original": [], "refvos": []}
    ref_masks = fast_masks = None
    # first use, untimed in the rounds: oneDNN's primitives for both; for refvos also what a
    # machine does once (auto's measurement, cached; OpenVINO's conversion, cached on disk)
    first_use: dict[str, float] = {}
    start = time.perf_counter()
    original_video(original_model, paths[:2], EXPRESSION, device)
    first_use["original"] = time.perf_counter() - start
    start = time.perf_counter()
    predictor.predict_video(paths[:2], EXPRESSION, batch_size=cfg["video_batch"])
    first_use["refvos"] = time.perf_counter() - start
    peaks = [peak_now(cfg, device, matmul_peak)]  # around the rounds: before, after each
    for _ in range(cfg["video_rounds"]):
        start = time.perf_counter()
        ref_masks = original_video(original_model, paths, EXPRESSION, device)
        times["original"].append(time.perf_counter() - start)
        start = time.perf_counter()
        fast_masks = [
            r.mask
            for r in predictor.predict_video(paths, EXPRESSION, batch_size=cfg["video_batch"])
        ]
        times["refvos"].append(time.perf_counter() - start)
        peaks.append(peak_now(cfg, device, matmul_peak))
        log(f"video round: original {times['original'][-1]:.1f}s refvos {times['refvos'][-1]:.1f}s")
    n = len(paths)
    t_orig, t_fast = statistics.median(times["original"]), statistics.median(times["refvos"])
    agreement = workloads.mask_agreement(ref_masks, fast_masks)
    # the fast path in fp32 must reproduce the original exactly (up to float reassociation)
    fp32_predictor = Predictor(fast_model, device=device, precision="fp32", channels_last=True)
    fp32_masks = [
        r.mask
        for r in fp32_predictor.predict_video(paths, EXPRESSION, batch_size=cfg["video_batch"])
    ]
    fp32_agreement = workloads.mask_agreement(ref_masks, fp32_masks)
    iou_obj = workloads.mask_agreement([m for m in obj_masks], ref_masks)["mean_iou"]
    precision_choice = predictor.precision_choice.to_json()
    compile_report = predictor.compile_report()
    del fast_model, predictor, fp32_predictor
    flops = workloads.count_arithmetic(model.segmenter, h, w, model.config.text_dim)
    ceiling = speedup_ceiling(n * flops["in_map"], times["original"], peaks)
    return {
        "frames": n,
        "size": size_key((h, w)),
        "expression": EXPRESSION,
        "batch_size": cfg["video_batch"],
        "refvos_precision": precision_choice["precision"],
        "refvos_precision_choice": precision_choice,
        "refvos_compile": compile_report,
        "rounds": cfg["video_rounds"],
        "first_use_2_frames_s": {k: round(v, 3) for k, v in first_use.items()},
        "original_s": machine.summary(times["original"]),
        "refvos_s": machine.summary(times["refvos"]),
        "fps_original": n / t_orig,
        "fps_refvos": n / t_fast,
        "speedup": t_orig / t_fast,
        "gflop_per_frame": {k: flops[k] / 1e9 for k in ("all", "in_map")},
        "ceiling": ceiling,
        "speedup_ceiling": ceiling["speedup_ceiling"],
        "head_calibration": calibration,
        "fp32_masks_iou_with_object": iou_obj,
        "bf16_vs_fp32": agreement,
        "refvos_fp32_vs_original": fp32_agreement,
    }


def make_train_batch(cfg, text_max_tokens: int) -> dict[str, torch.Tensor]:
    from refvos.media.image import to_tensor
    from refvos.tokenization import get_tokenizer

    b, s = cfg["train_batch"], cfg["train_size"]
    frames, masks = workloads.make_clip(b, s, s, seed=1)
    ids, att = get_tokenizer().encode(
        [EXPRESSION, "the ball on the left"][:b] + [EXPRESSION] * max(0, b - 2), text_max_tokens
    )
    target = torch.from_numpy(np.stack(masks)).long()
    target[:, :4] = 255  # some ignored pixels, as the padding of the train transform
    return {
        "image": torch.stack([to_tensor(f) for f in frames]),
        "mask": target,
        "input_ids": ids,
        "attention_mask": att,
    }


def bench_train(model, cfg, device, matmul_peak: dict[str, float]) -> dict[str, Any]:
    """Images/s and peak memory of refvos's training step vs the original's, alternated.
    ``speedup_ceiling``: the original's step over the arithmetic floor of the segmentation
    network's forward and backward (:func:`speedup_ceiling`; BERT, normalisation, activations
    and the optimizer left out, so the true ceiling is lower).
    ``speedup_if_only_convolutions``: the original's step over the time one more refvos step,
    profiled (``refvos_profile``), spends in its convolutions (forward and both gradients): the
    speedup refvos's step would reach at those convolutions' speed if nothing else cost time
    (on the CPU; None on a GPU, whose kernels the CPU profile does not time)."""
    from benchmarks.project_train import project_step

    batch = make_train_batch(cfg, model.config.max_tokens)
    b = batch["image"].shape[0]
    steps: dict[str, Any] = {}
    steps["original"] = OriginalTrainStep(copy.deepcopy(model), device)
    steps["original"].call = lambda s=steps["original"]: s(batch)
    refvos = project_step(copy.deepcopy(model), batch, device, "auto")
    steps["refvos"] = refvos
    steps["refvos"].call = refvos
    fp32 = project_step(copy.deepcopy(model), batch, device, "fp32")
    steps["refvos_fp32"] = fp32
    steps["refvos_fp32"].call = fp32
    times: dict[str, list[float]] = {k: [] for k in steps}
    mem: dict[str, dict] = {}
    losses: dict[str, list[float]] = {k: [] for k in steps}
    for name, step in steps.items():  # warm-up; its peak is each variant's peak memory
        rss_before = machine.current_rss_mb()
        machine.reset_peak_memory(device)
        losses[name].append(step.call())
        peak = machine.peak_memory_mb(device)
        peak["rss_before_mb"] = rss_before
        peak["step_extra_mb"] = peak["mb"] - rss_before if rss_before is not None else None
        mem[name] = peak
    peaks = [peak_now(cfg, device, matmul_peak)]  # around the rounds: before, after each
    for _ in range(cfg["train_repeats"]):
        for name, step in steps.items():
            start = time.perf_counter()
            losses[name].append(step.call())
            machine.sync(device)
            times[name].append(time.perf_counter() - start)
        peaks.append(peak_now(cfg, device, matmul_peak))
        log("train round: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
    out: dict[str, Any] = {
        "batch": b,
        "size": size_key((cfg["train_size"], cfg["train_size"])),
        "refvos_step_source": refvos.source,
        "refvos_precision": refvos.precision,
    }
    for name in steps:
        t = statistics.median(times[name])
        out[name] = {
            "step_s": machine.summary(times[name]),
            "images_per_s": b / t,
            "peak_memory": mem[name],
            "losses": [round(x, 5) for x in losses[name]],
        }
    base = out["original"]["images_per_s"]
    for name in steps:
        out[name]["speedup_vs_original"] = out[name]["images_per_s"] / base
    out["speedup_if_only_convolutions"] = None  # on a GPU the CPU self times are launches
    if torch.device(device).type == "cpu":
        profiled = workloads.profile_top_ops(refvos)
        out["refvos_profile"] = profiled
        out["speedup_if_only_convolutions"] = (
            statistics.median(times["original"]) / profiled["convolution_self_s"]
        )
    side = cfg["train_size"]
    flops = workloads.count_arithmetic(model.segmenter, side, side, model.config.text_dim, b)
    out["gflop_per_step_in_map"] = flops["in_map_train"] / 1e9
    out["ceiling"] = speedup_ceiling(flops["in_map_train"], times["original"], peaks)
    out["speedup_ceiling"] = out["ceiling"]["speedup_ceiling"]
    for s in steps.values():
        if hasattr(s, "close"):
            s.close()
    return out


def bench_trained_agreement(cfg, device, workdir: Path) -> dict[str, Any]:
    """The bf16 fast path against fp32 on a trained network (the random ResNet-101 of the video
    section has near-zero logit margins, so its bf16 masks measure noise): ``refvos_lite`` trained
    by the offline demo's recipe (``refvos demo --preset <demo_preset>``), then
    ``Predictor.predict_video`` on synthetic clips it never saw, in bf16 (the atrous
    convolutions in each form; ``bf16_vs_fp32`` is the worse) and in fp32."""
    from refvos import Predictor
    from refvos.data.scenes import make_video_clip
    from refvos.modeling.head import ATROUS_FORMS
    from refvos.modeling.surgery import with_atrous_form
    from refvos.runtime.compiling import SegmenterRunner

    model, size, preset, demo = trained_network(cfg, workdir)
    fp32_path = Predictor(model, device=device, precision="fp32")
    # bf16 in both forms of the atrous convolutions (auto runs whichever it measures faster):
    # one bf16 Predictor, its network run in each form
    bf16_path = Predictor(model, device=device, precision="bf16")
    runners = {
        form: SegmenterRunner(with_atrous_form(bf16_path.segmenter, form)) for form in ATROUS_FORMS
    }
    fp32, objects, expressions = [], [], []
    bf16: dict[str, list] = {form: [] for form in runners}
    for seed in workloads.agreement_seeds(cfg["agreement_clips"]):
        frames, gts, expression = make_video_clip(cfg["agreement_frames"], size, seed=seed)
        fp32 += [r.mask for r in fp32_path.predict_video(frames, expression)]
        for form, runner in runners.items():
            bf16_path.runner = runner
            bf16[form] += [r.mask for r in bf16_path.predict_video(frames, expression)]
        objects += gts
        expressions.append(expression)
    by_form = {form: workloads.mask_agreement(fp32, masks) for form, masks in bf16.items()}
    worst = min(by_form, key=lambda form: by_form[form]["mean_iou"])
    int8 = bench_int8(model, fp32_path, cfg, device, workdir, size)
    return {
        "model": f"refvos_lite trained by the demo recipe (preset {preset!r})",
        "demo_overall_iou": demo["overall_iou"],
        "demo_wall_time_s": demo["wall_time_s"],
        "clips": len(expressions),
        "frames": len(fp32),
        "size": size_key((size, size)),
        "expressions": expressions,
        "bf16_vs_fp32": by_form[worst],  # the worse of the two atrous forms
        "bf16_vs_fp32_worst_atrous": worst,
        "bf16_vs_fp32_by_atrous": by_form,
        "fp32_iou_with_object": workloads.mask_agreement(objects, fp32)["mean_iou"],
        "int8": int8,
    }


def trained_network(cfg, workdir: Path) -> tuple[Any, int, str, dict[str, Any]]:
    """``(model, image side, preset, demo metrics)`` of the network the demo recipe trains: the
    finished ``refvos demo`` run of ``--demo-dir`` (no second training), else one trained into
    ``workdir`` once per bench run."""
    from refvos import load_checkpoint
    from refvos.demo import PRESETS, run_demo

    if cfg.get("demo_dir"):  # a finished `refvos demo` run: its network, not a second training
        demo_dir = Path(cfg["demo_dir"])
        demo = json.loads((demo_dir / "metrics.json").read_text())
    else:
        demo_dir = workdir / "demo"
        if (demo_dir / "metrics.json").is_file():
            demo = json.loads((demo_dir / "metrics.json").read_text())
        else:
            demo = run_demo(demo_dir, preset=cfg["demo_preset"], seed=0)
    preset = demo["preset"]
    return load_checkpoint(demo_dir / "model.pth").eval(), PRESETS[preset].image_size, preset, demo


def bench_int8(model, fp32_path, cfg, device, workdir: Path, size: int) -> dict[str, Any]:
    """The opt-in int8 path (``refvos.export.quantize``, ONNX Runtime QDQ) on the trained network:
    calibrated on one clip, compared with the fp32 Predictor's masks on the agreement clips."""
    from refvos.data.scenes import make_video_clip
    from refvos.export import export_segmenter, onnx_session
    from refvos.export.quantize import quantize_segmenter
    from refvos.media.image import to_tensor
    from refvos.modeling.postprocess import foreground_mask

    fp32_onnx = export_segmenter(model.cpu().eval(), workdir / "lite_fp32.onnx", size, size)

    def feeds(frames, expression):
        text = fp32_path.encode_expressions([expression]).cpu().numpy()
        return [(to_tensor(f)[None].numpy(), text) for f in frames]

    frames, _, expression = make_video_clip(
        cfg["agreement_frames"], size, seed=999
    )  # calibration clip
    int8_onnx = quantize_segmenter(fp32_onnx, workdir / "lite_int8.onnx", feeds(frames, expression))
    sessions = {"fp32": onnx_session(fp32_onnx), "int8": onnx_session(int8_onnx)}
    masks: dict[str, list] = {"predictor_fp32": [], "fp32": [], "int8": []}
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for seed in workloads.agreement_seeds(cfg["agreement_clips"]):
        frames, _, expression = make_video_clip(cfg["agreement_frames"], size, seed=seed)
        masks["predictor_fp32"] += [r.mask for r in fp32_path.predict_video(frames, expression)]
        for x, t in feeds(frames, expression):
            for name, session in sessions.items():
                start = time.perf_counter()
                (logits,) = session.run(None, {"images": x, "text": t})
                times[name].append(time.perf_counter() - start)
                masks[name].append(foreground_mask(torch.from_numpy(logits))[0].numpy())
    return {
        "calibration_frames": cfg["agreement_frames"],
        "format": "onnxruntime QDQ, int8 weights per channel",
        "int8_vs_fp32": workloads.mask_agreement(masks["predictor_fp32"], masks["int8"]),
        "onnx_fp32_vs_fp32": workloads.mask_agreement(masks["predictor_fp32"], masks["fp32"]),
        "latency_onnx_fp32": machine.summary(times["fp32"]),
        "latency_onnx_int8": machine.summary(times["int8"]),
    }


def bench_lite(cfg, device) -> dict[str, Any]:
    from refvos.modeling import build_model

    torch.manual_seed(0)
    model = build_model("refvos_lite", backbone_weights=None, text_encoder=None).eval()
    seg = model.segmenter
    text = torch.randn(1, model.config.text_dim)
    out: dict[str, Any] = {}
    for hw in cfg["latency_sizes"]:
        h, w = hw
        entry: dict[str, Any] = {"gflop": workloads.count_flops(seg, h, w, text.shape[1]) / 1e9}
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for prec in times:
            workloads.frame_runner(seg, h, w, text, prec, True, device)()
        for _ in range(cfg["lite_repeats"]):
            for prec in times:
                run = workloads.frame_runner(seg, h, w, text, prec, True, device)
                times[prec] += machine.time_calls(run, 1, warmup=0, device=device)
        for prec, t in times.items():
            entry[prec] = machine.summary(t)
        out[size_key(hw)] = entry
    return out


def bench_onnx(r101, cfg, workdir: Path) -> dict[str, Any]:
    """ONNX export + onnxruntime parity and latency (fp32, CPU) of r101 and lite at one size."""
    from refvos.export import export_onnx, onnx_session
    from refvos.modeling import build_model

    h, w = cfg["onnx_size"]
    torch.manual_seed(0)
    lite = build_model("refvos_lite", backbone_weights=None, text_encoder=None).eval()
    out: dict[str, Any] = {"size": size_key((h, w))}
    for name, model, repeats in (
        ("refvos_r101", r101, cfg["onnx_repeats"]),
        ("refvos_lite", lite, cfg["lite_onnx_repeats"]),
    ):
        model = model.cpu().eval()
        model.segmenter.to(memory_format=torch.contiguous_format)
        path = workdir / f"{name}.onnx"
        result = export_onnx(model, path, h, w, dynamic=False)
        session = onnx_session(path)
        x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        t = np.random.default_rng(1).standard_normal((1, model.config.text_dim)).astype(np.float32)
        times = machine.time_calls(
            lambda s=session, x=x, t=t: s.run(None, {"images": x, "text": t}), repeats, warmup=1
        )
        out[name] = {
            "export_s": result.export_seconds,
            "parity": result.parity,
            "onnxruntime_latency": machine.summary(times),
            "file_mb": path.stat().st_size / 2**20,
        }
        log(
            f"onnx {name}: {statistics.median(times):.3f}s/frame, max diff {result.parity['max_abs_logit_diff']:.2e}"
        )
        if name == "refvos_r101":
            out[name]["int8"] = bench_int8_latency(path, [(x, t), (-x, t)], repeats, workdir)
            log(
                f"onnx {name} int8: {out[name]['int8']['onnxruntime_latency']['median_s']:.3f}s/frame"
            )
    return out


def bench_int8_latency(fp32_path: Path, calibration, repeats: int, workdir: Path) -> dict[str, Any]:
    """Latency of the opt-in int8 graph (``refvos.export.quantize``: backbone int8, head float) of an
    exported segmenter, calibrated on ``calibration`` (random frames: a latency, not an accuracy;
    the accuracy is ``trained_agreement.int8`` on a trained network)."""
    from refvos.export import onnx_session
    from refvos.export.quantize import quantize_segmenter

    start = time.perf_counter()
    path = quantize_segmenter(fp32_path, workdir / f"{fp32_path.stem}_int8.onnx", calibration)
    quantize_s = time.perf_counter() - start
    session = onnx_session(path)
    x, t = calibration[0]
    times = machine.time_calls(
        lambda: session.run(None, {"images": x, "text": t}), repeats, warmup=1
    )
    return {
        "quantize_s": round(quantize_s, 2),
        "onnxruntime_latency": machine.summary(times),
        "file_mb": path.stat().st_size / 2**20,
    }


def bench_profile(model, cfg, device, text) -> dict[str, Any]:
    seg = model.segmenter.eval()
    h, w = cfg["profile_size"]
    out = {"size": size_key((h, w))}
    for prec in ("fp32", "bf16"):
        run = workloads.frame_runner(seg, h, w, text, prec, True, device, fold_bn=prec == "bf16")
        run()
        out[prec] = workloads.profile_top_ops(run)
    seg.to(memory_format=torch.contiguous_format)
    return out


# --------------------------------------------------------------------------- report


# the measured ceiling of a target (a speedup no path that forms every product can exceed)
CEILINGS = {
    "video_speedup_vs_original": "video_speedup_ceiling",
    "train_speedup_vs_original": "train_speedup_ceiling",
}


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Each target's value, bound and whether it is met; where it has a ceiling
    (:data:`CEILINGS`), the ceiling and whether the bound lies within it."""
    out = {}
    for key, (op, bound) in TARGETS.items():
        value = result.get(key)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out[key] = {"value": value, "target": f"{op} {bound}", "met": met}
        ceiling = result.get(CEILINGS.get(key, ""))
        if ceiling is not None:
            out[key]["ceiling"] = ceiling
            out[key]["bound_within_ceiling"] = ceiling >= bound
    return out


def table(r: dict[str, Any]) -> str:
    lines = []

    def row(*cells):
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")

    m = r.get("matmul", {})
    lines.append(
        f"machine: {r['machine']['cpu']}, {r['machine']['logical_cpus']} logical CPUs, "
        f"torch {r['machine']['torch']}, load {r['machine']['load_average_start']} -> {r.get('load_average_end')}"
    )
    if m:
        lines.append(
            f"matmul peak: fp32 {m['fp32']['gflops_best']:.0f} GFLOP/s, bf16 {m['bf16']['gflops_best']:.0f} GFLOP/s "
            f"(n={m['fp32']['n']}, best of {m['fp32']['repeats']})"
        )
    lines.append("")
    row(
        "refvos_r101 per frame",
        "GFLOP",
        "fp32 NCHW s",
        "fp32 CL s",
        "bf16 CL s",
        "bf16 CL BN-folded s",
        "bf16 taps s",
        "fp32 compiled s",
        "bf16 compiled s",
        "OpenVINO fp32 s",
        "OpenVINO bf16 s",
        "OpenVINO bf16 taps s",
        "roofline fp32 s",
        "roofline bf16 s",
        "ratio fp32",
        "ratio bf16",
        "fastest",
        "ratio fastest",
        "auto / fastest",
    )
    row(*["---"] * 19)

    def cell(e, k):
        return f"{e[k]['median_s']:.3f}" if k in e else "-"

    for size, e in r.get("latency", {}).items():
        if size == "auto":
            continue
        row(
            size,
            f"{e['gflop']:.1f}",
            cell(e, "fp32_nchw"),
            cell(e, "fp32"),
            cell(e, "bf16_unfolded"),
            cell(e, "bf16"),
            cell(e, "bf16_taps"),
            cell(e, "fp32_compiled"),
            cell(e, "bf16_compiled"),
            cell(e, "openvino_fp32"),
            cell(e, "openvino_bf16"),
            cell(e, "openvino_bf16_taps"),
            f"{e['roofline_fp32_s']:.3f}",
            f"{e['roofline_bf16_s']:.3f}",
            f"{e['roofline_ratio_fp32']:.2f}",
            f"{e['roofline_ratio_bf16']:.2f}",
            e["best"],
            f"{e['roofline_ratio_best']:.2f}",
            f"{e['auto_vs_fastest']:.2f} ({e['auto_variant']})",
        )
    if "auto" in r.get("latency", {}):
        a = r["latency"]["auto"]
        lines.append(
            f"auto chose {a.get('backend', 'torch')} {a['precision']} atrous {a.get('atrous', 'conv')} "
            f"({a['source']}: {a['reason']})"
        )
    lines.append("")
    v = r.get("video")
    if v:
        lines.append(
            f"video ({v['frames']} frames {v['size']}, one expression): original {v['fps_original']:.3f} fps, "
            f"refvos ({v['refvos_precision']}) {v['fps_refvos']:.3f} fps, speedup {v['speedup']:.2f}x "
            f"(ceiling {v['speedup_ceiling']:.2f}x: {v['gflop_per_frame']['in_map']:.1f} GFLOP per frame "
            f"in the map at the median matmul peak around the rounds); "
            f"bf16 vs fp32 (untrained r101) mean IoU {v['bf16_vs_fp32']['mean_iou']:.4f}, pixel agreement "
            f"{v['bf16_vs_fp32']['pixel_agreement']:.5f}, frames identical "
            f"{v['bf16_vs_fp32']['frames_identical_fraction']:.2f}"
        )
    a = r.get("trained_agreement")
    if a:
        lines.append(
            f"bf16 vs fp32 on a trained network ({a['model']}, {a['frames']} frames of {a['clips']} "
            f"clips): mean IoU {a['bf16_vs_fp32']['mean_iou']:.4f}, pixel agreement "
            f"{a['bf16_vs_fp32']['pixel_agreement']:.5f}, frames identical "
            f"{a['bf16_vs_fp32']['frames_identical_fraction']:.2f}"
        )
    t = r.get("train")
    if t:
        lines.append(
            f"train step (batch {t['batch']}, {t['size']}; ceiling {t['speedup_ceiling']:.2f}x: "
            f"{t['gflop_per_step_in_map']:.0f} GFLOP of convolution products per step at the median matmul peak around the rounds):"
        )
        row("variant", "img/s", "speedup", "peak RSS MB", "step extra MB")
        row(*["---"] * 5)
        for name in ("original", "refvos", "refvos_fp32"):
            e = t[name]
            row(
                name,
                f"{e['images_per_s']:.3f}",
                f"{e['speedup_vs_original']:.2f}",
                f"{e['peak_memory']['mb']:.0f}",
                f"{e['peak_memory']['step_extra_mb']:.0f}"
                if e["peak_memory"]["step_extra_mb"] is not None
                else "-",
            )
    lite = r.get("lite")
    if lite:
        lines.append(
            "refvos_lite per frame: "
            + "; ".join(
                f"{k} fp32 {e['fp32']['median_s']:.3f}s bf16 {e['bf16']['median_s']:.3f}s"
                for k, e in lite.items()
            )
        )
    o = r.get("onnx")
    if o:
        lines.append(
            "onnxruntime fp32 per frame at "
            + o["size"]
            + ": "
            + "; ".join(
                f"{n} {o[n]['onnxruntime_latency']['median_s']:.3f}s (max |diff| {o[n]['parity']['max_abs_logit_diff']:.1e})"
                for n in ("refvos_r101", "refvos_lite")
                if n in o
            )
        )
        int8 = o.get("refvos_r101", {}).get("int8")
        if int8:
            lines.append(
                f"onnxruntime int8 (backbone int8, head float) refvos_r101 per frame at {o['size']}: "
                f"{int8['onnxruntime_latency']['median_s']:.3f}s (quantised in {int8['quantize_s']:.0f}s)"
            )
    if r.get("peers"):
        lines += [""] + peers.peers_lines(r["peers"])
    lines.append("")
    row("target", "value", "bound", "met", "ceiling")
    row(*["---"] * 5)
    for k, e in r["targets"].items():
        val = "-" if e["value"] is None else f"{e['value']:.3f}"
        ceiling = f"{e['ceiling']:.2f}" if "ceiling" in e else "-"
        row(k, val, e["target"], {True: "yes", False: "NO", None: "n/a"}[e["met"]], ceiling)
    return "\n".join(lines)


# ------------------------------------------------------------------------ headline numbers


def headline_spec(cfg: dict[str, Any]) -> dict[str, tuple[str | None, Any]]:
    """The flat headline keys of the JSON: ``key -> (section, path)``, the path a tuple of keys
    into the section's result or a function of it. Sections that did not run give no key."""
    first = size_key(cfg["latency_sizes"][0])

    def worst(field: str):
        return lambda lat: max(e[field] for e in latency_sizes(lat))

    return {
        "matmul_gflops_fp32": ("matmul", ("fp32", "gflops_best")),
        "matmul_gflops_bf16": ("matmul", ("bf16", "gflops_best")),
        "roofline_ratio_fp32": ("latency", worst("roofline_ratio_fp32")),
        "roofline_ratio_bf16": ("latency", worst("roofline_ratio_bf16")),
        "roofline_ratio_best": ("latency", worst("roofline_ratio_best")),
        "auto_vs_fastest": ("latency", worst("auto_vs_fastest")),
        "auto_precision": ("latency", ("auto", "precision")),
        "latency_r101_fp32_s": ("latency", (first, "fp32", "median_s")),
        "latency_r101_bf16_s": ("latency", (first, "bf16", "median_s")),
        "video_fps_original": ("video", ("fps_original",)),
        "video_fps_refvos": ("video", ("fps_refvos",)),
        "video_speedup_vs_original": ("video", ("speedup",)),
        "video_speedup_ceiling": ("video", ("speedup_ceiling",)),
        "bf16_mask_iou_vs_fp32_r101_untrained": ("video", ("bf16_vs_fp32", "mean_iou")),
        "onnx_max_abs_logit_diff": (
            "onnx",
            lambda o: max(
                o[n]["parity"]["max_abs_logit_diff"] for n in ("refvos_r101", "refvos_lite")
            ),
        ),
        "onnx_latency_r101_s": ("onnx", ("refvos_r101", "onnxruntime_latency", "median_s")),
        "onnx_latency_lite_s": ("onnx", ("refvos_lite", "onnxruntime_latency", "median_s")),
        "onnx_int8_latency_r101_s": (
            "onnx",
            ("refvos_r101", "int8", "onnxruntime_latency", "median_s"),
        ),
        "bf16_mask_iou_vs_fp32": ("trained", ("bf16_vs_fp32", "mean_iou")),
        "bf16_mask_pixel_agreement": ("trained", ("bf16_vs_fp32", "pixel_agreement")),
        "bf16_frames_identical_fraction": (
            "trained",
            ("bf16_vs_fp32", "frames_identical_fraction"),
        ),
        "int8_onnxruntime_mask_iou_vs_fp32": ("trained", ("int8", "int8_vs_fp32", "mean_iou")),
        # refvos's int8 model (refvos quantize, in the peers section) supersedes the ONNX Runtime
        # recipe's figure where it ran
        "int8_mask_iou_vs_fp32": (
            None,
            lambda s: (
                _peer_int8(s)["agreement"]["mean_iou"]
                if _peer_int8(s)
                else _dig(s.get("trained"), ("int8", "int8_vs_fp32", "mean_iou"))
            ),
        ),
        "int8_source": (
            None,
            lambda s: (
                INT8_SOURCES["peers"]
                if _peer_int8(s)
                else INT8_SOURCES["trained"]
                if s.get("trained")
                else None
            ),
        ),
        "int8_latency_trained_s": (
            None,
            lambda s: _peer_int8(s)["latency"]["median_s"] if _peer_int8(s) else None,
        ),
        "refvos_over_best_peer": ("peers", ("refvos_over_best_peer",)),
        "latency_lite_fp32_s": ("lite", (first, "fp32", "median_s")),
        "latency_lite_bf16_s": ("lite", (first, "bf16", "median_s")),
        "train_images_per_s_original": ("train", ("original", "images_per_s")),
        "train_images_per_s_refvos": ("train", ("refvos", "images_per_s")),
        "train_speedup_vs_original": ("train", ("refvos", "speedup_vs_original")),
        "train_speedup_ceiling": ("train", ("speedup_ceiling",)),
        "train_speedup_if_only_convolutions": ("train", ("speedup_if_only_convolutions",)),
        "train_precision_refvos": ("train", ("refvos_precision",)),
        "train_speedup_vs_original_fp32": ("train", ("refvos_fp32", "speedup_vs_original")),
        "train_peak_memory_mb_original": ("train", ("original", "peak_memory", "mb")),
        "train_peak_memory_mb_refvos": ("train", ("refvos", "peak_memory", "mb")),
    }


# where a section's result goes in the JSON (the section's own name where not listed)
SECTION_KEYS = {"trained": "trained_agreement"}
INT8_SOURCES = {
    "trained": "onnxruntime QDQ recipe (refvos.export.quantize.quantize_segmenter), trained_agreement",
    "peers": "refvos quantize (OpenVINO, NNCF accuracy control), peers.trained",
}


def _dig(value: Any, path: tuple) -> Any:
    """``value[path[0]][path[1]]...``; None where a step is None (a section that did not run)."""
    for part in path:
        if value is None:
            return None
        value = value[part]
    return value


def _peer_int8(sections: dict[str, Any]) -> dict[str, Any] | None:
    """The peers section's figures of refvos's int8 model, None where it did not run."""
    return (
        ((sections.get("peers") or {}).get("trained") or {}).get("variants", {}).get("refvos_int8")
    )


def headline(sections: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """The flat headline keys (:func:`headline_spec`) of the sections' results ``{section: result}``:
    ``(section, path)`` digs into that section's result (the key left out where the section did not
    run); ``(None, function)`` is a function of all the sections (left out where it gives None)."""
    out = {}
    for key, (name, path) in headline_spec(cfg).items():
        if name is None:
            value = path(sections)
        elif not sections.get(name):
            continue
        else:
            value = path(sections[name]) if callable(path) else _dig(sections[name], path)
        if value is not None:
            out[key] = value
    return out


def assemble(
    result: dict[str, Any], sections: dict[str, Any], cfg: dict[str, Any]
) -> dict[str, Any]:
    """``result`` with each section's result under its key (:data:`SECTION_KEYS`) and the
    headline keys derived from them."""
    for name, value in sections.items():
        if value:
            result[SECTION_KEYS.get(name, name)] = value
    result.update(headline(sections, cfg))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/bench.json")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and one repeat (for tests)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--demo-preset",
        choices=["default", "quick", "tiny"],
        default=None,
        help="the demo preset that trains the network of the agreement section (default: "
        "default, tiny with --quick)",
    )
    parser.add_argument(
        "--demo-dir",
        default=None,
        help="a finished `refvos demo --out DIR` run whose network the agreement section "
        "uses instead of training one (after `make demo`: demo_out)",
    )
    parser.add_argument(
        "--compiled-latency",
        action="store_true",
        help="also time the torch.compile variants in --quick mode (the full run always does)",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["latency", "video", "trained", "train", "lite", "onnx", "profile", "peers"],
    )
    parser.add_argument(
        "--int8-model",
        default=None,
        help="the int8 model (`refvos quantize`) of the trained network for the peers section; "
        "written there first (accuracy-controlled quantisation, minutes) when missing",
    )
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg["compiled_latency"] = cfg["compiled_latency"] or args.compiled_latency
    cfg["demo_preset"] = args.demo_preset or cfg["demo_preset"]
    cfg["demo_dir"] = args.demo_dir
    device = torch.device(args.device)
    started = time.perf_counter()
    from refvos.io import atomic_write_json
    from refvos.modeling import build_model

    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "config": cfg,
        "machine": machine.machine_info(),
        "errors": {},
    }
    log(f"machine {result['machine']}")

    def section(name, fn):
        if name in args.skip:
            return None
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            with machine.own_heap():  # the earlier sections' objects out of gc.collect()'s way
                value = fn()
        except Exception as e:  # noqa: BLE001 - recorded; the run goes on and exits non-zero
            traceback.print_exc()
            result["errors"][name] = f"{type(e).__name__}: {e}"
            return None
        result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        return value

    sections: dict[str, Any] = {"matmul": section("matmul", lambda: bench_matmul(cfg, device))}
    matmul_peak = {k: sections["matmul"][k]["gflops_best"] for k in ("fp32", "bf16")}

    t0 = time.perf_counter()
    torch.manual_seed(0)
    # --quick: the real ResNet-101 with a 2-layer 64-wide BERT (memory and time of the test)
    kw = {"text_config": QUICK_TEXT_CONFIG} if args.quick else {}
    model = build_model("refvos_r101", backbone_weights=None, text_encoder=None, **kw).eval()
    result["build_r101_s"] = round(time.perf_counter() - t0, 1)
    text = torch.randn(1, model.config.text_dim, generator=torch.Generator().manual_seed(0))

    with tempfile.TemporaryDirectory(prefix="refvos-bench-") as tmp:
        workdir = Path(tmp)
        sections["latency"] = section(
            "latency", lambda: bench_latency(model, cfg, device, text, matmul_peak)
        )
        # video fits the head (conv_2) for non-trivial masks; the sections after it use that model
        sections["video"] = section(
            "video", lambda: bench_video(model, cfg, device, workdir, matmul_peak)
        )
        sections["profile"] = section("profile", lambda: bench_profile(model, cfg, device, text))
        sections["onnx"] = section("onnx", lambda: bench_onnx(model, cfg, workdir))
        sections["trained"] = section(
            "trained", lambda: bench_trained_agreement(cfg, device, workdir)
        )

        def run_peers():
            model_t, side, _, _ = trained_network(cfg, workdir)
            if args.int8_model and not Path(args.int8_model).is_file():
                log(
                    f"quantising the trained network into {args.int8_model} (accuracy-controlled; minutes)"
                )
                result["int8_quantize"] = peers.quantize_trained(
                    model_t, side, args.int8_model, cfg
                )
            return peers.bench_peers(model, (model_t, side), cfg, workdir, args.int8_model)

        sections["peers"] = section("peers", run_peers)
        sections["lite"] = section("lite", lambda: bench_lite(cfg, device))
        sections["train"] = section("train", lambda: bench_train(model, cfg, device, matmul_peak))
    assemble(result, sections, cfg)

    result["load_average_end"] = machine.load_average()
    result["duration_s"] = round(time.perf_counter() - started, 1)
    result["targets"] = targets(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    print(table(result))
    print(f"\nwrote {out} in {result['duration_s']:.0f} s")
    if result["errors"]:
        print(f"errors in sections: {result['errors']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
