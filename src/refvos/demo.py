"""The offline demo behind ``make demo``: synthetic data -> CPU training -> test metrics -> video.

:func:`run_demo` writes the built-in synthetic RefCOCO data (:func:`~refvos.data.synthetic.make_refcoco`),
reads it back through ``build_dataset("refcoco", ...)``, trains ``refvos_lite`` on the CPU,
evaluates on the held-out ``testA`` + ``testB`` splits (never trained on), segments a synthetic
video with :class:`~refvos.predictor.Predictor` and writes ``out_dir/``::

    metrics.json           overall / mean IoU, precision@0.5..0.9 (fractions), per split and per
                           expression category, the video's J, wall time, images seen, recipe, device
    overlays/NN.png        test images: prediction in red, ground-truth outline in green, expression
    training_curve.png     loss and batch IoU per iteration
    video.gif              the synthetic video with its predicted masks and expression
    model.pth              the trained network in refvos's checkpoint format (``load_checkpoint``)
    data/                  the generated data set (RefCOCO layout)

The recipe (:data:`PRESETS`; the default trains on Lite0 stage 2 with a 64-channel head): the MiniLM sentence encoder stays frozen and each distinct
expression's sentence vector is computed once; the ImageNet EfficientNet-Lite0 backbone is frozen
except its last ``tuned_blocks`` blocks, so the frozen part runs once per image and is cached; the
RefVOS head is trained (its sentence-independent ASPP once per image, the language fusion once per
expression) with AdamW, linear warm-up and cosine decay, for a fixed number of iterations (a safety
time cap stops training early, and says so in ``metrics.json``).
"""

from __future__ import annotations

import copy
import math
import os
import platform
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import save_checkpoint
from .data import build_dataset, collate
from .data.synthetic import make_refcoco, make_video_clip
from .data.transforms import IGNORE_INDEX
from .errors import InputError
from .imaging import IMAGENET_MEAN, IMAGENET_STD, denormalize
from .io import atomic_write_json
from .metrics import RefSegMetrics, region_similarity
from .modeling import RefVOS, build_model
from .modeling.surgery import set_dropout, split_backbone
from .postprocess import foreground_mask
from .predictor import Predictor
from .runtime import Workload, autocast, choose_precision, module_signature
from .visualize import overlay, plot_curves, save_gif, save_image

TEST_SPLITS = ("testA", "testB")
FOREGROUND_WEIGHT = 5.0  # cross-entropy weight of the referent's pixels


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a demo run (stored in ``metrics.json`` and the checkpoint).

    Attributes:
        num_images: synthetic RefCOCO images; of every 20, 16 are ``train``, 2 ``val``, 1
            ``testA`` and 1 ``testB``.
        image_size: side in pixels of the generated images; training and evaluation run at it.
        backbone_stage: the EfficientNet-Lite0 stage whose features feed the head (2: 40 channels
            at stride 8, which keep the colour and shape detail the expressions name).
        head_channels: width of the RefVOS head.
        atrous_rates: the head's ASPP dilations (RefVOS's 12/24/36 are for 60x60 feature maps).
        dropout: dropout probability in the head while training (RefVOS uses 0.5).
        tuned_blocks: trailing blocks of the backbone trained with the head (their ImageNet BN
            statistics are kept); the blocks before them are frozen and run once per image.
        iterations: optimiser steps (the fixed training budget).
        batch_size: images per step, each with every training expression about it.
        lr: AdamW peak learning rate (linear warm-up over ``warmup`` steps, then cosine to 0).
        weight_decay: AdamW weight decay.
        warmup: warm-up steps.
        time_cap_s: safety cap on the training loop's wall time; reported when hit.
        precision: autocast precision (``auto``: the faster of fp32 and bf16 for one training step
            on this CPU, measured once and cached; ``metrics.json``'s ``precision`` says which and why).
        video_frames: frames of the synthetic video.
        overlays: test overlays written.
    """

    num_images: int
    image_size: int
    backbone_stage: int
    head_channels: int
    atrous_rates: tuple[int, int, int]
    dropout: float
    tuned_blocks: int
    iterations: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int
    time_cap_s: float
    precision: str
    video_frames: int
    overlays: int


PRESETS: dict[str, Recipe] = {
    # 128-pixel images give 16x16 stride-8 maps: ASPP rates 3/6/9 are RefVOS's 12/24/36 at 60x60
    "default": Recipe(num_images=1000, image_size=128, backbone_stage=2, head_channels=64,
                      atrous_rates=(3, 6, 9), dropout=0.0,
                      tuned_blocks=1, iterations=6000, batch_size=6, lr=3e-3, weight_decay=1e-4,
                      warmup=20, time_cap_s=480.0, precision="auto", video_frames=12, overlays=8),
    "quick": Recipe(num_images=400, image_size=128, backbone_stage=2, head_channels=64,
                    atrous_rates=(3, 6, 9), dropout=0.0,
                    tuned_blocks=1, iterations=1500, batch_size=6, lr=3e-3, weight_decay=1e-4,
                    warmup=20, time_cap_s=240.0, precision="auto", video_frames=12, overlays=8),
    "tiny": Recipe(num_images=20, image_size=64, backbone_stage=2, head_channels=16,
                   atrous_rates=(2, 4, 6), dropout=0.0,
                   tuned_blocks=1, iterations=3, batch_size=4, lr=1e-3, weight_decay=1e-4, warmup=1,
                   time_cap_s=60.0, precision="fp32", video_frames=4, overlays=2),
}


@dataclass
class Encoded:
    """A split's samples with the frozen encoders' outputs cached.

    ``features`` float ``(I, C, h, w)`` (one per image), ``image_index`` long ``(N,)``,
    ``text_index`` long ``(N,)`` (rows of the shared sentence-vector table), ``masks`` uint8
    ``(N, H, W)`` (0/1, 255 ignore), ``images`` uint8 ``(I, H, W, 3)``, ``sentences`` and
    ``metas`` (N lists).
    """

    features: torch.Tensor
    image_index: torch.Tensor
    text_index: torch.Tensor
    masks: torch.Tensor
    images: np.ndarray
    sentences: list[str]
    metas: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.sentences)

    def samples_of(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of ``images`` (image rows, ``(G,)``): their indices ``(S,)`` and, for each,
        the position of its image in ``images`` ``(S,)``."""
        hit = self.image_index[:, None] == images[None, :]  # (N, G)
        samples, local = hit.nonzero(as_tuple=True)
        return samples, local


class SentenceTable:
    """Sentence vectors ``(U, D)`` of every distinct expression, computed once with the frozen encoder."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[torch.Tensor] = []
        self.attention: list[torch.Tensor] = []
        self.vectors: torch.Tensor | None = None

    def add(self, sentence: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
        if sentence not in self.index:
            self.index[sentence] = len(self.index)
            self.ids.append(input_ids)
            self.attention.append(attention_mask)
        return self.index[sentence]

    @torch.inference_mode()
    def encode(self, model: RefVOS, batch_size: int = 256) -> torch.Tensor:
        """Encode the sentences not yet encoded; returns all vectors ``(U, D)`` float32."""
        done = 0 if self.vectors is None else len(self.vectors)
        new = []
        for i in range(done, len(self.ids), batch_size):
            ids = torch.stack(self.ids[i : i + batch_size])
            att = torch.stack(self.attention[i : i + batch_size])
            new.append(model.encode_text(ids, att).float())
        if new:
            parts = ([] if self.vectors is None else [self.vectors]) + new
            self.vectors = torch.cat(parts)
        return self.vectors


def set_threads() -> int:
    """Use every core this process may run on; returns the count."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@torch.inference_mode()
def encode_split(
    model: RefVOS, root: Path, splits: tuple[str, ...], table: SentenceTable, precision: str,
    frozen: nn.Module,
) -> Encoded:
    """Read ``splits`` through ``build_dataset("refcoco", ..., mode="eval")`` (every
    (object, sentence) pair) and run the ``frozen`` part of the backbone once per image."""
    image_pos: dict[int, int] = {}
    raw_images: list[np.ndarray] = []
    image_index, text_index, masks, sentences, metas = [], [], [], [], []
    for split in splits:
        ds = build_dataset("refcoco", root, split, "eval", max_tokens=model.config.max_tokens)
        loader = torch.utils.data.DataLoader(ds, batch_size=64, collate_fn=collate)
        for batch in loader:
            for k, meta in enumerate(batch["meta"]):
                if meta["image_id"] not in image_pos:
                    image_pos[meta["image_id"]] = len(raw_images)
                    raw_images.append(denormalize(batch["image"][k]))
                image_index.append(image_pos[meta["image_id"]])
                text_index.append(table.add(batch["sentence"][k], batch["input_ids"][k],
                                            batch["attention_mask"][k]))
                masks.append(batch["mask"][k].to(torch.uint8))
                sentences.append(batch["sentence"][k])
                metas.append(meta)
    if not sentences:
        raise InputError(f"{root}: no samples in splits {splits}")
    images = np.stack(raw_images)
    device = torch.device("cpu")
    feats = []
    frozen.eval()
    for i in range(0, len(images), 32):
        x = _normalise(torch.from_numpy(images[i : i + 32]))
        with autocast(device, precision):
            feats.append(frozen(x).float())
    return Encoded(torch.cat(feats), torch.tensor(image_index), torch.tensor(text_index),
                   torch.stack(masks), images, sentences, metas)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> ImageNet-normalised float ``(B, 3, H, W)`` (as ``imaging.to_tensor``)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def fused_logits(head: nn.Module, tuned: nn.Module, features: torch.Tensor, local: torch.Tensor,
                 text: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The training step's forward: ``tuned`` blocks and the head's sentence-independent part on
    cached frozen features ``(G, C, h, w)`` once per image, the language fusion once per sentence
    (``local (S,)``: each sentence's image row; ``text (S, D)``). Float logits ``(S, 2, *size)``."""
    visual = head.visual(tuned(features))
    logits = head.decode(visual[local], text)
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)


def head_logits(model: RefVOS, tuned: nn.Module, data: Encoded, images: torch.Tensor, text: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fused_logits` for every sentence about the images ``images`` (rows ``(G,)``);
    returns float logits ``(S, 2, H, W)`` at the image size (what ``model.segment`` computes from
    the images) and the sample indices ``(S,)`` they belong to."""
    samples, local = data.samples_of(images)
    logits = fused_logits(model.segmenter.classifier, tuned, data.features[images], local,
                          text[data.text_index[samples]], tuple(data.masks.shape[-2:]))
    return logits, samples


def train_step_workload(model: RefVOS, frozen: nn.Module, tuned: nn.Module, recipe: Recipe,
                        sentences_per_image: int = 3) -> Workload:
    """One training step of :func:`train_head` (forward + backward of copies of the ``tuned``
    blocks and the head on a random batch of ``recipe.batch_size`` images): what ``auto`` times."""
    size = recipe.image_size
    b, s = recipe.batch_size, recipe.batch_size * sentences_per_image

    def runner(precision: str):
        head = copy.deepcopy(model.segmenter.classifier).train()
        blocks = copy.deepcopy(tuned).eval()
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            features = frozen.eval()(torch.randn(b, 3, size, size, generator=gen))
        text = torch.randn(s, model.config.text_dim, generator=gen)
        local = torch.arange(b).repeat_interleave(sentences_per_image)
        target = torch.randint(0, 2, (s, size, size), generator=gen)

        def run():
            with autocast(torch.device("cpu"), precision):
                logits = fused_logits(head, blocks, features, local, text, (size, size))
            segmentation_loss(logits, target).backward()
            head.zero_grad(set_to_none=True)
            blocks.zero_grad(set_to_none=True)

        return run

    name = f"demo-train:{module_signature(model.segmenter.classifier)}:{b}x{size}x{size}:{recipe.tuned_blocks}blocks"
    return Workload(name, runner)


def lr_factor(step: int, recipe: Recipe) -> float:
    """Linear warm-up then cosine decay to 0, as a factor of ``recipe.lr``."""
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.iterations - recipe.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice of the referent, per sample (the referent is a few percent of
    the pixels; Dice keeps the head from settling on all-background).

    logits float ``(B, 2, H, W)``; target long ``(B, H, W)`` 0/1, 255 ignored."""
    weight = torch.tensor([1.0, FOREGROUND_WEIGHT], device=logits.device)
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
    valid = (target != IGNORE_INDEX).float()
    prob = logits.softmax(1)[:, 1] * valid
    gt = (target == 1).float()
    inter = (prob * gt).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2)) + gt.sum((1, 2)) + 1)
    return ce + dice.mean()


def train_head(
    model: RefVOS, tuned: nn.Module, data: Encoded, text: torch.Tensor, recipe: Recipe, precision: str,
    seed: int,
) -> dict[str, Any]:
    """Train the ``tuned`` backbone blocks (BN statistics kept) and ``model.segmenter.classifier``
    on cached features, with a tqdm progress bar.

    Each step takes ``recipe.batch_size`` images (epochs of a seeded permutation) with every
    training sentence about them. Returns ``{"iterations", "train_images_seen",
    "train_samples_seen", "time_cap_hit", "train_time_s", "curve": [(step, loss, batch_iou)]}``."""
    from tqdm import tqdm

    head = model.segmenter.classifier.train()
    tuned.eval()
    params = [p for p in (*tuned.parameters(), *head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, recipe))
    gen = torch.Generator().manual_seed(seed)
    num_images = len(data.features)
    device = torch.device("cpu")
    order, pos = torch.randperm(num_images, generator=gen), 0
    curve, images_seen, samples_seen, capped = [], 0, 0, False
    start = time.perf_counter()
    bar = tqdm(range(recipe.iterations), desc="training", unit="it", dynamic_ncols=True)
    for step in bar:
        if time.perf_counter() - start > recipe.time_cap_s:
            capped = True
            break
        if pos + recipe.batch_size > num_images:
            order, pos = torch.randperm(num_images, generator=gen), 0
        images = order[pos : pos + recipe.batch_size]
        pos += recipe.batch_size
        with autocast(device, precision):
            logits, samples = head_logits(model, tuned, data, images, text)
        target = data.masks[samples].long()
        loss = segmentation_loss(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        images_seen += len(images)
        samples_seen += len(samples)
        with torch.no_grad():
            pred, valid = foreground_mask(logits), target != IGNORE_INDEX
            gt = (target == 1) & valid
            union = ((pred & valid) | gt).sum().item()
            batch_iou = (pred & gt).sum().item() / union if union else 0.0
        curve.append((step + 1, loss.item(), batch_iou))
        bar.set_postfix(loss=f"{loss.item():.3f}", iou=f"{batch_iou:.2f}")
    bar.close()
    head.eval()
    return {"iterations": len(curve), "train_images_seen": images_seen,
            "train_samples_seen": samples_seen, "time_cap_hit": capped,
            "train_time_s": round(time.perf_counter() - start, 2), "curve": curve}


@torch.inference_mode()
def evaluate(model: RefVOS, tuned: nn.Module, data: Encoded, text: torch.Tensor, precision: str, categories: dict[int, list[str]]
             ) -> tuple[dict[str, Any], np.ndarray]:
    """RefVOS's IoU metrics over all samples, per split and per expression category.

    Returns the metrics dict and the predicted masks bool ``(N, H, W)``."""
    model.eval()
    tuned.eval()
    device = torch.device("cpu")
    overall = RefSegMetrics()
    buckets: dict[str, RefSegMetrics] = defaultdict(RefSegMetrics)
    preds = np.zeros(tuple(data.masks.shape), dtype=bool)
    size = tuple(data.masks.shape[-2:])
    for i in range(0, len(data.features), 16):
        samples, local = data.samples_of(torch.arange(i, min(i + 16, len(data.features))))
        with autocast(device, precision):  # the model's inference path: decode features of the images
            features = tuned(data.features[i : i + 16])
            logits = model.decode(features[local], text[data.text_index[samples]], size)
        pred = foreground_mask(logits).numpy()
        gt = data.masks[samples].numpy()
        ignore = gt == IGNORE_INDEX
        overall.update(pred, gt, ignore=ignore)
        inter = (pred & (gt == 1)).sum(axis=(1, 2))
        union = ((pred & ~ignore) | (gt == 1)).sum(axis=(1, 2))
        for k, n in enumerate(samples.tolist()):
            meta = data.metas[n]
            keys = [f"split/{meta['split']}"] + [f"category/{c}" for c in categories.get(meta["sent_id"], [])]
            for key in keys:
                buckets[key].update_from_counts([inter[k]], [union[k]])
            preds[n] = pred[k]
    out = _summary(overall)
    out["breakdown"] = {k: _summary(m) for k, m in sorted(buckets.items())}
    return out, preds


def _summary(m: RefSegMetrics) -> dict[str, Any]:
    r = m.compute()
    keys = ["overall_iou", "mean_iou"] + [f"precision@{t:.1f}" for t in m.thresholds]
    return {**{k: round(r[k], 4) for k in keys}, "num_samples": r["num_samples"]}


def _upscale(a: np.ndarray, factor: int) -> np.ndarray:
    return a.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else a


def _display_factor(size: int) -> int:
    """Nearest-neighbour magnification so that small pictures and their captions are legible."""
    return max(1, math.ceil(256 / size))


def write_overlays(out_dir: Path, data: Encoded, preds: np.ndarray, count: int) -> list[str]:
    """``count`` test overlays spread over the test set; returns their paths relative to ``out_dir``."""
    picks = np.linspace(0, len(data) - 1, num=min(count, len(data))).round().astype(int)
    factor = _display_factor(data.masks.shape[-1])
    paths = []
    for n, i in enumerate(picks):
        image = data.images[int(data.image_index[i])]
        gt = data.masks[i].numpy() == 1
        pic = overlay(_upscale(image, factor), _upscale(preds[i], factor), data.sentences[i],
                      gt=_upscale(gt, factor))
        rel = f"overlays/{n:02d}.png"
        save_image(pic, out_dir / rel)
        paths.append(rel)
    return paths


def segment_video(model: RefVOS, out_dir: Path, recipe: Recipe, precision: str, seed: int) -> dict[str, Any]:
    """Segment a synthetic clip with :class:`Predictor` (the ``refvos predict --video`` path) and
    write ``video.gif``; returns its expression, per-frame J and mean J."""
    frames, gts, expression = make_video_clip(recipe.video_frames, recipe.image_size, seed=seed)
    predictor = Predictor(model, device="cpu", precision=precision, compile=False)
    masks = [r.mask for r in predictor.predict_video(frames, expression)]
    j = [region_similarity(m, g) for m, g in zip(masks, gts)]
    factor = _display_factor(recipe.image_size)
    pictures = [overlay(_upscale(f, factor), _upscale(m, factor), expression) for f, m in zip(frames, masks)]
    save_gif(pictures, out_dir / "video.gif", fps=4)
    return {"expression": expression, "frames": len(frames), "mean_j": round(float(np.mean(j)), 4),
            "j_per_frame": [round(float(x), 4) for x in j], "gif": "video.gif"}


def _sentence_categories(root: Path, splits: tuple[str, ...]) -> dict[int, list[str]]:
    """sent_id -> the RefVOS categories the generator tagged it with."""
    from .data import REFER

    refer = REFER(root, "refcoco", "unc")
    return {sid: list(s.get("categories", [])) for sid, s in refer.Sents.items()
            if refer.sentToRef[sid]["split"] in splits}


def device_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"device": "cpu", "cpu": cpu, "threads": threads, "torch": torch.__version__}


def run_demo(out_dir: str | os.PathLike, preset: str = "default", seed: int = 0) -> dict[str, Any]:
    """Run the whole demo and write ``out_dir`` (see the module docstring); returns ``metrics.json``'s content."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    recipe = PRESETS[preset]
    start = time.perf_counter()
    out_dir = Path(out_dir)
    threads = set_threads()
    torch.manual_seed(seed)
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 2)
        return now

    t = time.perf_counter()
    root = make_refcoco(out_dir / "data", num_images=recipe.num_images, image_size=recipe.image_size, seed=seed)
    t = lap("generate_data_s", t)
    model = build_model("refvos_lite", backbone_stage=recipe.backbone_stage,
                        head_channels=recipe.head_channels, atrous_rates=recipe.atrous_rates).eval()
    model.config.input_size = recipe.image_size  # refvos predict on model.pth scales pictures to it
    set_dropout(model.segmenter.classifier, recipe.dropout)
    for p in model.parameters():
        p.requires_grad_(False)
    frozen, tuned = split_backbone(model, recipe.tuned_blocks)
    for p in (*tuned.parameters(), *model.segmenter.classifier.parameters()):
        p.requires_grad_(True)
    t = lap("build_model_s", t)
    choice = choose_precision(recipe.precision, torch.device("cpu"),
                              train_step_workload(model, frozen, tuned, recipe) if recipe.precision == "auto" else None)
    precision = choice.precision
    t = lap("choose_precision_s", t)
    table = SentenceTable()
    train = encode_split(model, root, ("train",), table, precision, frozen)
    test = encode_split(model, root, TEST_SPLITS, table, precision, frozen)
    text = table.encode(model)
    t = lap("encode_s", t)
    log = train_head(model, tuned, train, text, recipe, precision, seed)
    t = lap("train_s", t)
    metrics, preds = evaluate(model, tuned, test, text, precision, _sentence_categories(root, TEST_SPLITS))
    overlays = write_overlays(out_dir, test, preds, recipe.overlays)
    t = lap("evaluate_s", t)
    curve = log.pop("curve")
    plot_curves({"loss": [(s, loss) for s, loss, _ in curve], "batch IoU": [(s, iou) for s, _, iou in curve]},
                out_dir / "training_curve.png", xlabel="iteration",
                title=f"refvos_lite head on synthetic RefCOCO ({preset})")
    video = segment_video(model, out_dir, recipe, precision, seed + 1)
    t = lap("video_s", t)
    result = {
        **{k: v for k, v in metrics.items() if k != "breakdown"},
        "test_splits": list(TEST_SPLITS),
        "breakdown": metrics["breakdown"],
        **log,
        "train_samples": len(train),
        "train_images": len(train.images),
        "distinct_expressions": len(table.index),
        "video": video,
        "overlays": overlays,
        "training_curve": "training_curve.png",
        "checkpoint": "model.pth",
        "preset": preset,
        "seed": seed,
        "precision": choice.to_json(),
        "recipe": {**asdict(recipe), "precision_used": precision,
                   "frozen": ["text_encoder", f"segmenter.backbone except its last {recipe.tuned_blocks} block(s)"],
                   "trained": [f"segmenter.backbone's last {recipe.tuned_blocks} block(s) (BN statistics kept)",
                               "segmenter.classifier"],
                   "optimizer": "AdamW", "schedule": "linear warm-up, cosine to 0",
                   "loss": f"cross-entropy (referent weight {FOREGROUND_WEIGHT:g}) + soft Dice"},
        **device_info(threads),
    }
    save_checkpoint(out_dir / "model.pth", model, demo={"preset": preset, "seed": seed,
                                                         "overall_iou": result["overall_iou"]})
    t = lap("checkpoint_s", t)
    result["timings"] = timings
    result["wall_time_s"] = round(time.perf_counter() - start, 2)
    atomic_write_json(out_dir / "metrics.json", result)
    return result
