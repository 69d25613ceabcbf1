"""The ``peers`` section of benchmarks/run.py: refvos's default inference against the runtimes a
user would pick instead, on the graph ``refvos export`` writes (the whole segmenter,
``images, text -> logits``).

Variants, per frame (batch 1), alternated in one process (medians):

- ``refvos_default``: what ``Predictor(model)`` runs with its defaults (backend and precision
  ``auto``), the image encoder and the decoder as the Predictor calls them;
- ``refvos_int8``: the Predictor with an int8 model (``refvos quantize``), when one is given for
  the trained network (``--int8-model``);
- peers: ``openvino_fp32`` / ``openvino_bf16`` (OpenVINO reading the ONNX graph,
  ``INFERENCE_PRECISION_HINT`` f32 / bf16), ``openvino_int8`` (NNCF's default post-training
  quantisation of that graph, calibrated on a few frames) and ``onnxruntime_fp32``.

Each variant's masks are compared with the fp32 PyTorch Predictor's on held-out synthetic clips
of the trained network (``mean_iou``): a peer counts as accurate at >= :data:`ACCURATE`.
Latency is measured on ``refvos_r101`` (random weights: latency only) and on the trained network.
``refvos_over_best_peer``: refvos's default over the fastest accurate peer on ``refvos_r101``
(the accuracy of a peer's recipe is the one measured on the trained network).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import machine, workloads

ACCURATE = 0.98
PEERS = ("openvino_fp32", "openvino_bf16", "openvino_int8", "onnxruntime_fp32")


def graph_runners(
    model, onnx_path: Path, calibration: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """``name -> run(images (1,3,H,W) float32, text (1,D) float32) -> logits`` of each peer that
    is installed (OpenVINO's need the [openvino] extra, ``openvino_int8`` also NNCF)."""
    from refvos.export import onnx_session
    from refvos.runtime import openvino_backend

    runners: dict[str, Any] = {}
    session = onnx_session(onnx_path)
    runners["onnxruntime_fp32"] = lambda x, t: session.run(None, {"images": x, "text": t})[0]
    if not openvino_backend.available():
        return runners
    import openvino as ov

    core = ov.Core()
    threads = torch.get_num_threads()

    def compiled(model_or_path, hint: str):
        c = core.compile_model(
            model_or_path,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": hint,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": threads,
            },
        )
        request = c.create_infer_request()
        return lambda x, t: request.infer(
            {"images": x, "text": t}, share_inputs=True, share_outputs=False
        )[0]

    runners["openvino_fp32"] = compiled(str(onnx_path), "f32")
    runners["openvino_bf16"] = compiled(str(onnx_path), "bf16")
    try:
        import nncf
    except ImportError:
        return runners
    dataset = nncf.Dataset([{"images": x, "text": t} for x, t in calibration])
    quantized = nncf.quantize(
        core.read_model(str(onnx_path)), dataset, subset_size=len(calibration)
    )
    runners["openvino_int8"] = compiled(quantized, "f32")
    return runners


def refvos_runner(predictor, expressions: int = 1):
    """The Predictor's own encoder + decoder on a preprocessed frame (as ``predict`` runs them);
    with ``expressions`` > 1, the decoder that many times on the one encoding (``predict_all``
    with several expressions about the frame), the last one's logits returned."""

    @torch.inference_mode()
    def run(x: np.ndarray, t: np.ndarray):
        images = (
            torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            if predictor.channels_last
            else torch.from_numpy(x)
        )
        features = predictor.encode_images(images)
        for _ in range(expressions):
            logits = predictor.decode(features, torch.from_numpy(t), x.shape[-2:])
        return logits.numpy()

    return run


# the peers section's several-expressions row: expressions about one frame
EXPRESSIONS_PER_FRAME = 3


def time_alternated(
    runners: dict[str, Any], x: np.ndarray, t: np.ndarray, repeats: int
) -> dict[str, Any]:
    """Per-frame seconds of each runner: one warm-up each, then ``repeats`` rounds alternated
    (:func:`benchmarks.machine.alternated_rounds`), every runner in every round (the fastest
    accurate peer may be several times slower than an inaccurate one)."""
    for run in runners.values():
        run(x, t)
    calls = {name: functools.partial(run, x, t) for name, run in runners.items()}
    times = machine.alternated_rounds(calls, repeats, drop_slower=False)
    return {name: machine.summary(v) for name, v in times.items()}


def bench_peers(r101, trained, cfg, workdir: Path, int8_model: str | None = None) -> dict[str, Any]:
    """The section (see the module docstring). ``trained``: ``(model, side)`` of the trained
    network; ``int8_model``: an int8 model of it written by ``refvos quantize``."""
    from refvos import Predictor
    from refvos.data.scenes import make_video_clip
    from refvos.export import export_segmenter
    from refvos.media.image import to_tensor
    from refvos.modeling.postprocess import foreground_mask

    out: dict[str, Any] = {"accurate_at_mean_iou": ACCURATE}
    # 1. agreement (and latency) on the trained network, on held-out clips
    model, side = trained
    model = model.cpu().eval()
    fp32 = Predictor(model, device="cpu", precision="fp32", backend="torch", compile=False)
    default = Predictor(model, device="cpu", compile=False)
    frames, _, expression = make_video_clip(
        cfg["agreement_frames"], side, seed=999
    )  # calibration clip
    text = fp32.encode_expressions([expression]).numpy()
    calibration = [(to_tensor(f)[None].numpy(), text) for f in frames]
    runners = graph_runners(
        model, export_segmenter(model, workdir / "peers_trained.onnx", side, side), calibration
    )
    runners["refvos_default"] = refvos_runner(default)
    if int8_model:
        runners["refvos_int8"] = refvos_runner(
            Predictor(model, device="cpu", compile=False, int8_model=int8_model)
        )
    masks: dict[str, list[np.ndarray]] = {k: [] for k in runners}
    reference: list[np.ndarray] = []
    for seed in workloads.agreement_seeds(cfg["agreement_clips"]):
        frames, _, expression = make_video_clip(cfg["agreement_frames"], side, seed=seed)
        reference += [p.mask for p in fp32.predict_video(frames, expression)]
        t = fp32.encode_expressions([expression]).numpy()
        for f in frames:
            x = to_tensor(f)[None].numpy()
            for name, run in runners.items():
                masks[name].append(
                    foreground_mask(torch.from_numpy(np.asarray(run(x, t))))[0].numpy()
                )
    x, t = calibration[0]
    latency = time_alternated(runners, x, t, cfg["peers_repeats"])
    out["trained"] = {
        "size": f"{side}x{side}",
        "frames": len(reference),
        "refvos_default_choice": default.precision_choice.to_json(),
        "variants": {
            name: {
                "agreement": workloads.mask_agreement(reference, masks[name]),
                "latency": latency[name],
            }
            for name in runners
        },
    }
    accurate = {
        name
        for name, v in out["trained"]["variants"].items()
        if v["agreement"]["mean_iou"] >= ACCURATE
    }
    out["accurate"] = sorted(accurate)
    del runners, default, fp32

    # 2. latency on refvos_r101 (random weights), the same recipes
    h, w = cfg["peers_size"]
    r101 = r101.cpu().eval()
    r101.segmenter.to(memory_format=torch.contiguous_format)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
    t = rng.standard_normal((1, r101.config.text_dim)).astype(np.float32)
    start = time.perf_counter()
    runners = graph_runners(
        r101, export_segmenter(r101, workdir / "peers_r101.onnx", h, w), [(x, t), (-x, t)]
    )
    prepare_s = time.perf_counter() - start
    default = Predictor(r101, device="cpu", max_size=None, compile=False)
    runners["refvos_default"] = refvos_runner(default)
    several = f"refvos_default_x{EXPRESSIONS_PER_FRAME}"
    runners[several] = refvos_runner(default, EXPRESSIONS_PER_FRAME)
    latency = time_alternated(runners, x, t, cfg["peers_repeats"])
    several_s = latency.pop(several)
    peers = [p for p in PEERS if p in latency and p in accurate]
    best = min(peers, key=lambda p: latency[p]["median_s"]) if peers else None
    out["r101"] = {
        "size": f"{w}x{h}",
        "prepare_s": round(prepare_s, 1),
        "latency": latency,
        "refvos_default_choice": default.precision_choice.to_json(),
        "best_accurate_peer": best,
    }
    out["refvos_over_best_peer"] = (
        latency["refvos_default"]["median_s"] / latency[best]["median_s"] if best else None
    )
    # N expressions about one frame: refvos encodes once and decodes N times; a peer running the
    # exported graph (images, text -> logits) runs it N times
    out["r101"]["several_expressions"] = {
        "expressions": EXPRESSIONS_PER_FRAME,
        "refvos_default": several_s,
        "best_accurate_peer_s": EXPRESSIONS_PER_FRAME * latency[best]["median_s"] if best else None,
        "refvos_over_best_peer": (
            several_s["median_s"] / (EXPRESSIONS_PER_FRAME * latency[best]["median_s"])
            if best
            else None
        ),
    }
    fastest = min((p for p in PEERS if p in latency), key=lambda p: latency[p]["median_s"])
    out["refvos_over_fastest_peer"] = (
        latency["refvos_default"]["median_s"] / latency[fastest]["median_s"]
    )
    out["fastest_peer"] = fastest
    r101.segmenter.to(memory_format=torch.contiguous_format)
    return out


def peers_lines(p: dict[str, Any]) -> list[str]:
    """The section as a table (benchmarks/run.py's report)."""
    lines = [
        f"peers (per frame; agreement: masks vs the fp32 Predictor on {p['trained']['frames']} held-out frames "
        f"of the trained network at {p['trained']['size']}; r101 at {p['r101']['size']}):",
        "",
        "| variant | r101 s / frame | trained s / frame | mean IoU vs fp32 | accurate |",
        "|---|---|---|---|---|",
    ]
    r101 = p["r101"]["latency"]
    for name, v in p["trained"]["variants"].items():
        r = f"{r101[name]['median_s']:.3f}" if name in r101 else "-"
        lines.append(
            f"| {name} | {r} | {v['latency']['median_s']:.4f} | {v['agreement']['mean_iou']:.4f} | "
            f"{'yes' if name in p['accurate'] else 'no'} |"
        )
    ratio = p["refvos_over_best_peer"]
    lines.append(
        f"refvos_over_best_peer: {'-' if ratio is None else f'{ratio:.2f}'} "
        f"(best accurate peer: {p['r101']['best_accurate_peer']}); refvos default chose "
        f"{p['r101']['refvos_default_choice']['backend']} {p['r101']['refvos_default_choice']['precision']}"
        f" (atrous {p['r101']['refvos_default_choice'].get('atrous', 'conv')})"
    )
    several = p["r101"].get("several_expressions")
    if several and several["refvos_over_best_peer"] is not None:
        lines.append(
            f"{several['expressions']} expressions about one r101 frame: refvos default "
            f"{several['refvos_default']['median_s']:.3f} s, the best accurate peer "
            f"{several['best_accurate_peer_s']:.3f} s ({several['refvos_over_best_peer']:.2f})"
        )
    return lines


# refvos quantize's calibration clips (held out: workloads.agreement_seeds)
CALIBRATION_SEEDS = range(900, 904)


def clip_pairs(seeds, side: int, frames: int) -> list[tuple[np.ndarray, str]]:
    """``(frame RGB uint8 (side, side, 3), expression)`` of ``frames``-frame synthetic clips of
    ``seeds``."""
    from refvos.data.scenes import make_video_clip

    pairs = []
    for seed in seeds:
        clip, _, expression = make_video_clip(frames, side, seed=seed)
        pairs += [(f, expression) for f in clip]
    return pairs


def quantize_trained(model, side: int, out: str, cfg) -> dict[str, Any]:
    """``refvos quantize``'s int8 model of the trained network, calibrated on 4 synthetic clips
    (seeds 900-903) and measured on the held-out clips of :func:`bench_peers` (seeds 1000+)."""
    from refvos.export.quantize import quantize_encoder

    frames = cfg["agreement_frames"]
    held_out = workloads.agreement_seeds(cfg["agreement_clips"])
    return quantize_encoder(
        model,
        out,
        clip_pairs(CALIBRATION_SEEDS, side, frames),
        clip_pairs(held_out, side, frames),
    )
