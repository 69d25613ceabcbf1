"""refvos start-up: what a user running ``refvos predict`` once on one picture waits for.

    .venv/bin/python benchmarks/startup.py --out bench_out/startup.json
    .venv/bin/python benchmarks/startup.py --checkpoint model.pth --image photo.jpg --repeats 5

Each repeat runs fresh Python processes (imports are what is measured, so nothing may be
cached in the measuring process): ``refvos --help``; the library's phases in one process --
``from refvos.predictor import Predictor`` (``import_s``), ``Predictor.from_checkpoint``
(``load_s``), the first ``predict_all`` on the picture (``predict_s``: reading the picture,
tokenising, the network; ``predict_again_s`` is a second call) -- and the heavy packages that
process imported; and the whole ``refvos predict`` command, beside a bare ``import torch`` (the
floor of any PyTorch program). Without ``--checkpoint`` the model
is ``refvos_lite`` with random weights and the shapes of ``make demo``'s ``model.pth``
(``--quick``: a tiny text encoder). Medians over the repeats; the load average at the start
and the end is recorded (other processes' load inflates every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPRESSION = "the man on the left"
# packages whose import costs start-up (seconds each on a loaded CPU)
HEAVY = (
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "tokenizers",
    "matplotlib",
    "scipy",
    "skimage",
)

PHASES_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from refvos.predictor import Predictor
t1 = time.perf_counter()
predictor = Predictor.from_checkpoint(sys.argv[1], device="cpu", precision=sys.argv[3], compile=False)
t2 = time.perf_counter()
predictor.predict_all(sys.argv[2], [sys.argv[4]])
t3 = time.perf_counter()
predictor.predict_all(sys.argv[2], [sys.argv[4]])
t4 = time.perf_counter()
heavy = json.loads(sys.argv[5])
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "predict_s": t3 - t2, "predict_again_s": t4 - t3,
                  "modules": sorted(m for m in heavy if m in sys.modules)}))
"""


def _env() -> dict[str, str]:
    """This checkout's sources first on the path; offline."""
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _run(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of a fresh process (interpreter start included) and its stdout."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])}... failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return seconds, proc.stdout


def make_checkpoint(path: Path, quick: bool) -> None:
    """``refvos_lite`` with random weights: MiniLM-L6's shapes (as ``make demo``'s model), or a
    tiny text encoder with ``quick``."""
    sys.path.insert(0, str(REPO / "src"))
    import torch

    from refvos.checkpoint import save_checkpoint
    from refvos.modeling import build_model
    from refvos.modeling.config import MINILM_L6_H384

    tiny = {
        **MINILM_L6_H384,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
    }
    torch.manual_seed(0)
    model = build_model(
        "refvos_lite",
        backbone_weights=None,
        text_encoder=None,
        text_config=tiny if quick else MINILM_L6_H384,
    )
    save_checkpoint(path, model)


def make_picture(path: Path, width: int = 640, height: int = 480) -> None:
    """A 640x480 JPEG (a phone picture's shape) of smooth colour gradients."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(path, quality=90)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(values), 4),
        "min_s": round(min(values), 4),
        "samples_s": [round(v, 4) for v in values],
    }


def measure(checkpoint: Path, image: Path, repeats: int, precision: str) -> dict[str, Any]:
    py = sys.executable
    samples: dict[str, list[float]] = {}
    modules: list[str] = []
    for _ in range(repeats):
        for name, argv in (
            ("python_start_s", [py, "-c", "pass"]),
            ("torch_import_s", [py, "-c", "import torch"]),  # the floor of any PyTorch program
            ("help_cli_s", [py, "-m", "refvos", "--help"]),
            (
                "predict_cli_s",
                [
                    py,
                    "-m",
                    "refvos",
                    "predict",
                    "--checkpoint",
                    str(checkpoint),
                    "--image",
                    str(image),
                    "-e",
                    EXPRESSION,
                    "--device",
                    "cpu",
                    "--precision",
                    precision,
                    "--compile",
                    "off",
                    "--mask-out",
                    str(image.with_name("startup_mask.png")),
                ],
            ),
        ):
            samples.setdefault(name, []).append(_run(argv)[0])
        _, out = _run(
            [
                py,
                "-c",
                PHASES_CHILD,
                str(checkpoint),
                str(image),
                precision,
                EXPRESSION,
                json.dumps(HEAVY),
            ]
        )
        phases = json.loads(out.strip().splitlines()[-1])
        modules = phases.pop("modules")
        for name, value in phases.items():
            samples.setdefault(name, []).append(value)
    result = {name: summary(values) for name, values in samples.items()}
    median = {name: r["median_s"] for name, r in result.items()}
    total = median["import_s"] + median["load_s"] + median["predict_s"]
    return {
        "phases": result,
        "work_share": round(median["predict_s"] / total, 4),
        "modules_imported_by_predict": modules,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument(
        "--checkpoint", type=Path, help="model file (default: refvos_lite, random weights)"
    )
    p.add_argument("--image", type=Path, help="picture (default: a 640x480 JPEG)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "auto"),
        help="fp32 (default): no calibration; 'auto' measures once per machine and caches",
    )
    p.add_argument(
        "--quick", action="store_true", help="a tiny default model, one repeat (for tests)"
    )
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from refvos.io import atomic_write_json

    repeats = 1 if args.quick else args.repeats
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or Path(tmp) / "model.pth"
        if args.checkpoint is None:
            make_checkpoint(checkpoint, args.quick)
        image = Path(tmp) / "picture.jpg"
        if args.image is None:
            make_picture(image)
        else:  # the command's mask is written beside a copy, never beside the user's picture
            image = image.with_suffix(args.image.suffix)
            image.write_bytes(args.image.read_bytes())
        result = measure(checkpoint, image, repeats, args.precision)
    result.update(
        {
            "checkpoint": str(args.checkpoint)
            if args.checkpoint
            else (
                "refvos_lite random (tiny text)"
                if args.quick
                else "refvos_lite random (MiniLM-L6 shapes)"
            ),
            "image": str(args.image) if args.image else "640x480 JPEG",
            "expression": EXPRESSION,
            "precision": args.precision,
            "repeats": repeats,
            "python": sys.version.split()[0],
            "logical_cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        }
    )
    atomic_write_json(args.out, result)
    for name, r in result["phases"].items():
        print(f"{name:18s} {r['median_s']:8.3f} s  (min {r['min_s']:.3f})")
    print(
        f"prediction's share of import + load + predict: {result['work_share']:.0%}; "
        f"imported: {', '.join(result['modules_imported_by_predict'])}"
    )
    print(f"load average {load_start} -> {result['load_average_end']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
