"""Evaluate a RefVOS network on a referring-segmentation Dataset (``refvos test``).

:func:`evaluate` runs the model on every sample at the sample's own resolution (the original's
``test.py``: batch 1, no resizing), takes the argmax mask and scores it:

- every data set: RefVOS's overall IoU, mean IoU and precision@0.5:0.9
  (:class:`~refvos.metrics.RefSegMetrics`);
- A2D-Sentences: the RefVOS block keeps the frames where the referred instance is absent (IoU
  0, as the original's ``test.py``); the ``mttr`` block (MTTR's IoU variant) and the COCO mask
  mAP (:class:`~refvos.metrics.A2DMaskAP`, detection score = :func:`~refvos.metrics.mask_score`)
  leave them out, as MTTR does;
- DAVIS-2017: J, F and J&F per object, per annotator and averaged, first-frame and full-video
  expressions apart (:class:`~refvos.metrics.DavisMetrics`), each object scored on the frame's
  merged label map as davis2017-evaluation scores a results folder (:class:`DavisFrameScorer`),
  plus RefVOS's IoU per expression kind (each object on its own, as the original's test.py).

Work is shared out: the backbone runs once per distinct image of a batch (and is reused by the
next batch when it shows the same image, e.g. several expressions of one object) and each
distinct sentence is encoded once. With ``batch_size > 1``, consecutive samples of one size are
batched. Under ``torch.distributed`` every process evaluates a shard (whole videos / images),
per-sample records and A2D states are gathered with ``all_gather_object`` and only rank 0 writes
the JSON / JSONL / chart files (overlays and submission PNGs are written by the rank that made
them; a DAVIS video never straddles two ranks).

Returned (and written) values are fractions in 0..1; NaN (an undefined COCO AP) becomes None.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.annotations import load_categorization
from ..data.base import DataLoader
from ..data.transforms import IGNORE_INDEX
from ..deps import require
from ..errors import InputError
from ..io import atomic_open, atomic_write_json
from ..media.image import denormalize
from ..media.visualize import overlay, save_image
from ..metrics import A2DMaskAP, DavisMetrics, RefSegMetrics, mask_score
from ..metrics.categories import (
    SampleResult,
    category_analysis,
    plot_category_analysis,
    write_category_analysis,
)
from ..metrics.davis import DAVIS_OVERLAPS, DavisFrameScorer, SubmissionWriter
from ..modeling.postprocess import foreground_mask, foreground_probability
from ..runtime import agree_across_ranks, autocast, resolve_device
from ..runtime.backend import CALIBRATION_SIDE, Backends, check_backend, torch_precision
from ..runtime.compiling import SegmenterRunner, check_compile
from . import distributed as du
from .samples import image_key, sample_meta, sample_name, shard_indices

DAVIS_FRAMES = ("inner", "all")
TEXT_CACHE_SIZE = 20000


# ------------------------------------------------------------------------------ outputs


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, atomically."""
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def _finite(obj: Any) -> Any:
    """JSON-safe copy: NaN / inf floats become None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ------------------------------------------------------------------------------ inference


class _Indexed(torch.utils.data.Dataset):
    """``(index, sample)`` for the given indices of a Dataset."""

    def __init__(self, dataset: torch.utils.data.Dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Any]]:
        return self.indices[i], self.dataset[self.indices[i]]


def _first(batch: list) -> Any:
    return batch[0]


class _Runner:
    """Runs the network on groups of same-size samples, reusing image features and sentence
    vectors: the model's own inference path, ``encode_image`` once per distinct picture (through
    ``segmenter``: a :class:`~refvos.runtime.compiling.SegmenterRunner`, compiled as ``compile`` says, or
    an OpenVINO runner, see :mod:`refvos.runtime.backend`) and ``decode`` per sample, upsampled to the
    image inside. ``model`` is a RefVOS network."""

    def __init__(
        self, model: torch.nn.Module, device: torch.device, precision: str, segmenter=None
    ) -> None:
        self.model, self.device, self.precision = model, device, precision
        self.segmenter = segmenter if segmenter is not None else SegmenterRunner(model.segmenter)
        self._text: dict[tuple, torch.Tensor] = {}
        self._features: dict[tuple, torch.Tensor] = {}
        self.backbone_runs = 0
        self.text_encodings = 0

    def _encode(self, samples: list[dict[str, Any]]) -> torch.Tensor:
        """Sentence vectors ``(B, D)``; each distinct token sequence is encoded once."""
        keys = [tuple(s["input_ids"][s["attention_mask"].bool()].tolist()) for s in samples]
        missing = list(dict.fromkeys(k for k in keys if k not in self._text))
        if missing:
            if len(self._text) + len(missing) > TEXT_CACHE_SIZE:
                self._text.clear()
            first = {k: s for k, s in zip(keys, samples)}
            ids = torch.stack([first[k]["input_ids"] for k in missing]).to(self.device)
            att = torch.stack([first[k]["attention_mask"] for k in missing]).to(self.device)
            with autocast(self.device, self.precision):
                vectors = self.model.encode_text(ids, att).float()
            self._text.update(zip(missing, vectors))
            self.text_encodings += len(missing)
        return torch.stack([self._text[k] for k in keys])

    def _backbone(self, samples: list[dict[str, Any]]) -> torch.Tensor:
        """Image features ``(B, 256, h, w)``, one ``encode_image`` pass per distinct picture."""
        keys = []
        for i, s in enumerate(samples):
            k = image_key(s["meta"])
            keys.append(("sample", i) if k is None else k)
        unique = list(dict.fromkeys(keys))
        todo = [k for k in unique if k not in self._features]
        cache = {k: v for k, v in self._features.items() if k in unique}
        if todo:
            first = {k: s for k, s in zip(keys, samples)}
            images = torch.stack([first[k]["image"] for k in todo]).to(self.device)
            with autocast(self.device, self.precision):
                feats = self.segmenter.encode(images)
            cache.update(zip(todo, feats))
            self.backbone_runs += len(todo)
        self._features = cache  # keep only this group's pictures for the next group
        return torch.stack([cache[k] for k in keys])

    @torch.inference_mode()
    def __call__(self, samples: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks bool ``(B, H, W)`` (argmax of the logits) and foreground probabilities
        ``(B, H, W)`` for samples whose images all have size ``(H, W)``."""
        size = tuple(samples[0]["image"].shape[-2:])
        text = self._encode(samples)
        features = self._backbone(samples)
        with autocast(self.device, self.precision):
            logits = self.segmenter.decode(features, text, size)
        return foreground_mask(logits), foreground_probability(logits)


def _groups(items: Iterable[tuple[int, dict]], batch_size: int) -> Iterator[list[tuple[int, dict]]]:
    """Consecutive items in runs of at most ``batch_size`` with images of one size."""
    group: list[tuple[int, dict]] = []
    for item in items:
        if group and (
            len(group) == batch_size or item[1]["image"].shape != group[0][1]["image"].shape
        ):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


# ------------------------------------------------------------------------------ evaluate


def _progress(iterable: Iterable, total: int, enabled: bool) -> Iterable:
    if not enabled:
        return iterable
    tqdm = require("tqdm", "progress bars").tqdm

    return tqdm(iterable, total=total, desc="test", unit="sample", dynamic_ncols=True)


def evaluate(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 1,
    workers: int = 0,
    display_dir: str | os.PathLike | None = None,
    display_limit: int = 50,
    submission_dir: str | os.PathLike | None = None,
    categories: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    davis_frames: str = "inner",
    progress: bool = False,
    run_info: dict[str, Any] | None = None,
    compile: str | bool = "auto",
    davis_overlap: str = "confident",
    backend: str = "auto",
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (eval mode samples; see the module docstring).

    Args:
        model: a RefVOS network (a DDP wrapper is unwrapped); it is put in eval mode.
        dataset: a referring Dataset in ``mode="eval"`` (or a ``ConcatDataset`` of them, e.g.
            DAVIS first-frame + full-video); samples as in ``refvos.data``.
        device, precision: as :mod:`refvos.runtime` (``"fp32"`` is faithful to the original;
            ``"auto"`` is measured on the first sample's size).
        batch_size: samples per forward pass (consecutive samples of one image size).
        workers: DataLoader worker processes.
        display_dir: write overlays (prediction tinted red, ground-truth outline green,
            expression below) of the first ``display_limit`` samples as
            ``<display_dir>/<index:06d>_<sample_name>.png``.
        submission_dir: DAVIS only: palette PNGs as :class:`SubmissionWriter`.
        categories: a RefVOS categorisation CSV (A2D / DAVIS): adds ``metrics["categories"]``
            (:func:`refvos.metrics.categories.category_analysis`) and, with ``output_dir``,
            ``categories.json`` and ``categories.png`` there.
        output_dir: where rank 0 writes ``metrics.json`` and ``samples.jsonl`` (None: nothing).
        davis_frames: ``"inner"`` leaves out each video's first and last frame from J / F, as
            davis2017-evaluation's semi-supervised task; ``"all"`` keeps every frame.
        progress: a tqdm bar on rank 0.
        run_info: what was evaluated (split, checkpoint, precision, output folders...), stored as
            ``metrics["run"]``.
        compile: ``torch.compile`` the segmentation network per image size (``"auto"``: sizes
            with enough samples to pay back the compile time; see :mod:`refvos.runtime.compiling`).
        davis_overlap: DAVIS: which object gets a pixel two objects predict, in the merged label
            map J / F are scored on and in ``submission_dir`` (:data:`DAVIS_OVERLAPS`).
        backend: ``"auto"``, ``"torch"`` or ``"openvino"`` (see :mod:`refvos.runtime.backend`; ``auto``
            considers OpenVINO only with ``precision="auto"``).

    Returns:
        ``{"metrics": dict, "samples": list}``. ``metrics``: ``dataset``, ``num_samples``,
        ``refvos`` (overall_iou, mean_iou, precision@0.5..0.9, ...); A2D adds ``mttr`` (same keys)
        and ``a2d_map`` (mAP, AP50, AP75, AP_small, AP_medium, AP_large), both without the
        samples whose meta says ``present: False``; ``runtime``: the backend and precision chosen
        and why, and the compile (or OpenVINO) report; DAVIS adds ``davis``
        (``frames``, ``summary`` {kind: {per_annotator, mean}}, ``per_object``, ``iou_by_kind``
        {kind: refvos keys}); ``categories`` with a CSV. ``samples``: one dict per sample in
        dataset order: ``index``, the sample's meta, ``sentence``, ``intersection``, ``union``,
        ``iou`` (RefVOS's), ``pred_area``, ``gt_area``, ``score``; DAVIS adds ``J`` and ``F`` (on
        the frame's merged label map, :class:`DavisFrameScorer`).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if davis_overlap not in DAVIS_OVERLAPS:
        raise InputError(f"davis_overlap must be one of {DAVIS_OVERLAPS}, got {davis_overlap!r}")
    if davis_frames not in DAVIS_FRAMES:
        raise InputError(f"davis_frames must be one of {DAVIS_FRAMES}, got {davis_frames!r}")
    if len(dataset) == 0:
        raise InputError("the data set has no sample to evaluate")
    records_cat = load_categorization(categories) if categories is not None else None
    first_meta = sample_meta(dataset, 0)
    name = str(first_meta.get("dataset", "unknown"))
    if records_cat is not None and "video" not in first_meta:
        raise InputError(
            f"--categories: RefVOS's categorisation files cover A2D and DAVIS expressions, not {name}"
        )
    if submission_dir is not None and name != "davis":
        raise InputError(
            f"--submission writes DAVIS-format results; data set {name!r} is not DAVIS"
        )

    rank, world = du.get_rank(), du.get_world_size()
    device = resolve_device(device)
    compile = check_compile(compile)
    net = getattr(model, "module", model).to(device).eval()
    # auto: measured on the first sample's size (capped: a few seconds at most)
    side = min(max(dataset[0]["image"].shape[-2:]), CALIBRATION_SIDE)
    text_dim = getattr(getattr(net, "config", None), "text_dim", None)  # for measuring only
    backends = Backends(
        lambda _: net.segmenter, text_dim, device, check_backend(backend), channels_last=False
    )
    choice = agree_across_ranks(backends.choose(precision, side))
    runner = _Runner(net, device, torch_precision(choice), backends.runner(choice, compile))
    indices = shard_indices(dataset, rank, world)
    runner.segmenter.expect_frames(
        len(indices)
    )  # compile="auto" weighs the compile time against these
    loader = DataLoader(
        _Indexed(dataset, indices),
        batch_size=1,
        shuffle=False,
        num_workers=workers,
        collate_fn=_first,
        pin_memory=device.type == "cuda",
    )
    writer = SubmissionWriter(submission_dir, davis_overlap) if submission_dir is not None else None
    ap = A2DMaskAP() if name == "a2d" else None
    davis_scorer = DavisFrameScorer(davis_overlap) if name == "davis" else None
    samples: list[dict[str, Any]] = []

    for group in _groups(_progress(loader, len(indices), progress and rank == 0), batch_size):
        preds, probs = runner([s for _, s in group])
        for (index, s), pred_t, prob_t in zip(group, preds, probs):
            mask = s["mask"].to(device)
            gt_t, ignore_t = mask == 1, mask == IGNORE_INDEX
            inter = int((pred_t & gt_t).sum())
            union = int(((pred_t | gt_t) & ~ignore_t).sum())
            pred, prob, gt = pred_t.cpu().numpy(), prob_t.cpu().numpy(), gt_t.cpu().numpy()
            score = mask_score(prob, pred)
            row = {
                "index": index,
                **s["meta"],
                "sentence": s["sentence"],
                "intersection": inter,
                "union": union,
                "iou": inter / union if union else 0.0,
                "pred_area": int(pred.sum()),
                "gt_area": int(gt.sum()),
                "score": score,
            }
            if davis_scorer is not None:  # J / F on the frame's merged label map
                davis_scorer.add(
                    row, pred, prob, gt, ignore_t.cpu().numpy() if bool(ignore_t.any()) else None
                )
            if ap is not None:
                ap.update(index, pred, gt, score)
            if writer is not None:
                writer.add(s["meta"], pred, prob)
            if display_dir is not None and index < display_limit:
                picture = overlay(denormalize(s["image"]), pred, s["sentence"], gt=gt)
                save_image(picture, Path(display_dir) / f"{index:06d}_{sample_name(s['meta'])}.png")
            samples.append(row)
    if writer is not None:
        writer.close()
    if davis_scorer is not None:
        davis_scorer.close()

    ap_state = ap.state() if ap is not None else []
    if world > 1:
        gathered = du.all_gather_object((samples, ap_state))
        samples = [r for part, _ in gathered for r in part]
        ap_state = [a for _, part in gathered for a in part]
    samples.sort(key=lambda r: r["index"])

    metrics = summarize(samples, name, ap_state if name == "a2d" else None, davis_frames)
    if records_cat is not None:
        # matched on the annotated expression (A2D's full_query where the original's rule cut it)
        results = [
            SampleResult(
                str(r["video"]),
                int(r["object_id"]),
                r.get("full_query", r["sentence"]),
                r["intersection"],
                r["union"],
            )
            for r in samples
        ]
        metrics["categories"] = category_analysis(results, records_cat)
    metrics["runtime"] = {
        "device": str(device),
        "backend": choice.backend,
        "precision": choice.to_json(),
        "compile": runner.segmenter.report(),
    }
    metrics = _finite(metrics)
    if run_info is not None:
        metrics["run"] = run_info
    if output_dir is not None and rank == 0:
        out = Path(output_dir)
        atomic_write_json(out / "metrics.json", metrics)
        write_jsonl(out / "samples.jsonl", samples)
        if "categories" in metrics:
            write_category_analysis(metrics["categories"], out / "categories.json")
            plot_category_analysis(metrics["categories"], out / "categories.png")
    return {"metrics": metrics, "samples": samples}


def summarize(
    samples: list[dict[str, Any]],
    dataset: str,
    a2d_state: list[dict] | None = None,
    davis_frames: str = "inner",
) -> dict[str, Any]:
    """The metrics dict of :func:`evaluate` from its per-sample records (and A2D's AP state)."""
    refvos = RefSegMetrics()
    refvos.update_from_counts([r["intersection"] for r in samples], [r["union"] for r in samples])
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "num_samples": len(samples),
        "refvos": refvos.compute(),
    }
    if dataset == "a2d":
        # MTTR's protocol leaves out frames where the referred instance is absent (the RefVOS
        # block above keeps them, as the original: IoU 0, their predicted pixels in the union).
        present = [r for r in samples if r.get("present", True)]
        mttr = RefSegMetrics("mttr")
        mttr.update_from_counts([r["intersection"] for r in present], [r["union"] for r in present])
        metrics["mttr"] = mttr.compute()
        absent = {r["index"] for r in samples if not r.get("present", True)}
        metrics["a2d_map"] = (
            A2DMaskAP().merge([a for a in a2d_state or [] if a["id"] not in absent]).compute()
        )
    if dataset == "davis":
        metrics["davis"] = _davis_summary(samples, davis_frames)
    return metrics


def _davis_summary(samples: list[dict[str, Any]], frames: str) -> dict[str, Any]:
    ends: dict[tuple, tuple[str, str]] = {}
    for r in samples:
        lo, hi = ends.get((r["video"], r["kind"]), (r["frame"], r["frame"]))
        ends[(r["video"], r["kind"])] = (min(lo, r["frame"]), max(hi, r["frame"]))
    davis = DavisMetrics()
    by_kind: dict[str, RefSegMetrics] = {}
    for r in samples:
        by_kind.setdefault(str(r["kind"]), RefSegMetrics()).update_from_counts(
            [r["intersection"]], [r["union"]]
        )
        if frames == "inner" and r["frame"] in ends[(r["video"], r["kind"])]:
            continue
        davis.add((r["video"], r["object_id"], r["annotator"], r["kind"]), r["J"], r["F"])
    out = davis.compute()
    return {
        "frames": frames,
        "summary": out["summary"],
        "per_object": out["per_object"],
        "iou_by_kind": {k: m.compute() for k, m in sorted(by_kind.items())},
    }
