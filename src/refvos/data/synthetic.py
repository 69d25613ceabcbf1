"""Built-in synthetic data written in the real on-disk layouts (RefCOCO, DAVIS-2017, A2D-Sentences).

The scenes (shapes, pictures, videos and their expressions) come from :mod:`refvos.data.scenes`;
this module writes them: :func:`make_refcoco`, :func:`make_davis`, :func:`make_a2d`
(:func:`make_all`: the three). Each expression is tagged with its RefVOS categories
(``appearance, obj-static, category, location, motion, obj-motion, static``).
Everything is deterministic for a seed (``numpy.random.default_rng``).
"""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from ..errors import InputError
from ..io import atomic_open, atomic_write, atomic_write_json
from .annotations import CATEGORIES, ExpressionCategory, write_categorization
from .scenes import (
    COLORS,
    DIRECTIONS,
    SHAPES,
    Expression,
    image_expressions,
    make_image,
    motion_expressions,
    videos,
)

REFCOCO_SPLITS = ("train",) * 16 + ("val",) * 2 + ("testA", "testB")


# ---------------------------------------------------------------- RefCOCO layout


def make_refcoco(
    root: str | os.PathLike,
    num_images: int = 200,
    image_size: int = 128,
    seed: int = 0,
    min_objects: int = 2,
    max_objects: int = 6,
    max_sentences: int = 3,
) -> Path:
    """Write a RefCOCO-layout data set under ``root`` and return ``root`` (the REFER data_root).

    ``root/images/mscoco/images/train2014/COCO_train2014_<id>.png``, ``root/refcoco/instances.json``
    (polygon segmentations) and ``root/refcoco/refs(unc).p`` (splits train / val / testA / testB;
    each sentence carries its RefVOS ``categories``)."""
    if not 2 <= min_objects <= max_objects <= len(SHAPES) * len(COLORS):
        raise InputError(f"need 2 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    image_dir = root / "images" / "mscoco" / "images" / "train2014"
    image_dir.mkdir(parents=True, exist_ok=True)
    images, anns, refs = [], [], []
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    ann_id = ref_id = sent_id = 0
    for i in range(num_images):
        image_id = i + 1
        img, shapes, polys, masks = make_image(rng, image_size, min_objects, max_objects)
        file_name = f"COCO_train2014_{image_id:012d}.png"
        Image.fromarray(img).save(image_dir / file_name)
        images.append(
            {"id": image_id, "file_name": file_name, "height": image_size, "width": image_size}
        )
        split = REFCOCO_SPLITS[i % len(REFCOCO_SPLITS)]
        for s, p, m in zip(shapes, polys, masks):
            ann_id += 1
            ys, xs = np.nonzero(m)
            bbox = [
                float(xs.min()),
                float(ys.min()),
                float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1),
            ]
            cat = SHAPES.index(s.shape) + 1
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": p,
                    "area": float(m.sum()),
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
            exprs = image_expressions(shapes, s, image_size)
            pick = rng.choice(len(exprs), size=min(max_sentences, len(exprs)), replace=False)
            sentences = []
            for k in sorted(int(x) for x in pick):
                sent_id += 1
                e = exprs[k]
                sentences.append(
                    {
                        "raw": e.text,
                        "sent": e.text,
                        "tokens": e.text.split(),
                        "sent_id": sent_id,
                        "categories": list(e.categories),
                    }
                )
            ref_id += 1
            refs.append(
                {
                    "ref_id": ref_id,
                    "ann_id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "split": split,
                    "sentences": sentences,
                    "sent_ids": [x["sent_id"] for x in sentences],
                    "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.png",
                }
            )
    atomic_write_json(
        root / "refcoco" / "instances.json",
        {"images": images, "annotations": anns, "categories": categories},
    )
    atomic_write(root / "refcoco" / "refs(unc).p", lambda f: pickle.dump(refs, f, protocol=2))
    return root


# ---------------------------------------------------------------- DAVIS-2017 and A2D-Sentences layouts


_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128, 0, 128, 128]


def _categorization_rows(video: str, k: int, e: Expression, first_id: int) -> ExpressionCategory:
    return ExpressionCategory(
        video,
        k + first_id,
        e.text,
        "Non-trivial",
        "Minimum Information",
        {c: c in e.categories for c in CATEGORIES},
    )


def make_davis(
    root: str | os.PathLike,
    num_videos: int = 10,
    num_frames: int = 8,
    image_size: int = 128,
    seed: int = 0,
    min_objects: int = 2,
    max_objects: int = 3,
) -> Path:
    """Write a DAVIS-2017-layout data set under ``root`` (the ``davis2017/`` folder) and return it.

    Every fifth video is in ``val``; the rest in ``train``. Both annotators' first-frame and
    full-video expression files are written (annotator 2's in latin-1), plus
    ``davis_text_annotations/RE_categorization.csv`` for annotator 1's full-video expressions."""
    root = Path(root)
    davis = root / "DAVIS"
    splits: dict[str, list[str]] = {"train": [], "val": []}
    lines: dict[tuple[int, str], list[str]] = {
        (a, k): [] for a in (1, 2) for k in ("first_frame", "full_video")
    }
    records = []
    for v, _rng, tracks, frames, labels in videos(
        seed, num_videos, num_frames, image_size, min_objects, max_objects
    ):
        seq = f"synth-{v:03d}"
        splits["val" if v % 5 == 4 else "train"].append(seq)
        (davis / "JPEGImages" / "480p" / seq).mkdir(parents=True, exist_ok=True)
        (davis / "Annotations" / "480p" / seq).mkdir(parents=True, exist_ok=True)
        for t, (img, lab) in enumerate(zip(frames, labels)):
            Image.fromarray(img).save(
                davis / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg", quality=95
            )
            p = Image.fromarray(lab, mode="P")
            p.putpalette(_PALETTE)
            p.save(davis / "Annotations" / "480p" / seq / f"{t:05d}.png")
        first = [tr.at(0) for tr in tracks]
        for k, tr in enumerate(tracks):
            ff1 = image_expressions(first, first[k], image_size)
            lines[(1, "first_frame")].append(f'{seq} {k + 1} "{ff1[-1].text}"')
            lines[(2, "first_frame")].append(f'{seq} {k + 1} "a {tr.shape.color} {tr.shape.shape}"')
            for a in (1, 2):
                e = motion_expressions(tracks, tr, a)[0]
                lines[(a, "full_video")].append(f'{seq} {k + 1} "{e.text}"')
            records.append(_categorization_rows(seq, k, motion_expressions(tracks, tr)[0], 1))
    sets = davis / "ImageSets" / "2017"
    for split, seqs in splits.items():
        atomic_write(
            sets / f"{split}.txt", lambda f, s=seqs: f.write("".join(x + "\n" for x in s)), mode="w"
        )
    text_dir = root / "davis_text_annotations"
    for (a, kind), ls in lines.items():
        name = f"Davis17_annot{a}{'_full_video' if kind == 'full_video' else ''}.txt"
        data = "".join(x + "\n" for x in ls).encode("latin-1" if a == 2 else "utf-8")
        atomic_write(text_dir / name, lambda f, d=data: f.write(d))
    write_categorization(text_dir / "RE_categorization.csv", records)
    return root


def make_a2d(
    root: str | os.PathLike,
    num_videos: int = 10,
    num_frames: int = 8,
    image_size: int = 128,
    seed: int = 0,
    annotated_every: int = 3,
    min_objects: int = 2,
    max_objects: int = 3,
) -> Path:
    """Write an A2D-Sentences-layout data set under ``root`` (the ``Release/`` folder); return it.

    Every ``annotated_every``-th frame gets ``Annotations/col`` and an ``.h5`` with the visible
    instances (a single 2-D ``reMask`` when only one is visible); every fifth video is ``test``.
    The first instance of a moving object has a query with a comma (quoted in the CSV), which the
    authors' reader cuts at the comma (``query_rule="original"``); at the default sizes some of
    them are in each split. ``RE_categorization.csv`` tags the whole queries.

    Two quirks of the published data are reproduced: the first video has an extra row whose
    instance id is ``1 (copy)`` (the published file's one mistake), and in every video with
    several annotated frames the last instance is left out of the last annotated frame's ``.h5``
    (a frame where the referred instance is absent)."""
    root = Path(root)
    queries, videoset, records = [], [], []
    for v, rng, tracks, frames, labels in videos(
        seed + 1, num_videos, num_frames, image_size, min_objects, max_objects
    ):
        video = "".join(
            rng.choice(
                list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"), size=11
            )
        )
        video = f"{v:02d}{video[2:]}"
        annotated = list(range(0, num_frames, annotated_every))
        videoset.append(
            [
                video,
                "0",
                "0",
                str(num_frames),
                str(image_size),
                str(image_size),
                str(num_frames),
                str(len(annotated)),
                "1" if v % 5 == 4 else "0",
            ]
        )
        for k, tr in enumerate(tracks):
            e = motion_expressions(tracks, tr)[0]
            text = e.text
            if (
                k == 0 and tr.motion in DIRECTIONS
            ):  # a query with a comma (--a2d-query original cuts it there)
                text = f"the {tr.shape.color} {tr.shape.shape}, moving {tr.motion}"
            queries.append([video, str(k), text])
            records.append(_categorization_rows(video, k, Expression(text, e.categories), 0))
        if v == 0:
            queries.append([video, "1 (copy)", queries[-1][2]])
        (root / "pngs320H" / video).mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / "col" / video).mkdir(parents=True, exist_ok=True)
        (root / "a2d_annotation_with_instances" / video).mkdir(parents=True, exist_ok=True)
        for t, img in enumerate(frames):
            Image.fromarray(img).save(root / "pngs320H" / video / f"{t + 1:05d}.png")
        for t in annotated:
            name = f"{t + 1:05d}"
            col = Image.fromarray(labels[t], mode="P")
            col.putpalette(_PALETTE)
            col.save(root / "Annotations" / "col" / video / f"{name}.png")
            ids = [k for k in range(len(tracks)) if (labels[t] == k + 1).any()]
            if (
                len(annotated) > 1 and t == annotated[-1] and len(ids) > 1
            ):  # last instance absent here
                ids = [k for k in ids if k != len(tracks) - 1]
            masks = np.stack([(labels[t] == k + 1).T.astype(np.uint8) for k in ids])
            with h5py.File(root / "a2d_annotation_with_instances" / video / f"{name}.h5", "w") as f:
                f["instance"] = np.asarray(ids, dtype=np.float64)
                f["reMask"] = masks[0] if len(ids) == 1 else masks
    with atomic_open(root / "a2d_annotation.txt", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["video_id", "instance_id", "query"])
        w.writerows(queries)
    with atomic_open(root / "videoset.csv", "w") as f:
        csv.writer(f, lineterminator="\n").writerows(videoset)
    write_categorization(root / "RE_categorization.csv", records)
    return root


def make_all(
    root: str | os.PathLike,
    num_images: int = 200,
    num_videos: int = 10,
    num_frames: int = 8,
    image_size: int = 128,
    seed: int = 0,
) -> dict[str, Path]:
    """All three: ``{"refcoco": root, "davis": root/"davis2017", "a2d": root/"a2d"/"Release"}``
    (the roots that ``build_dataset`` takes)."""
    root = Path(root)
    return {
        "refcoco": make_refcoco(root, num_images=num_images, image_size=image_size, seed=seed),
        "davis": make_davis(
            root / "davis2017",
            num_videos=num_videos,
            num_frames=num_frames,
            image_size=image_size,
            seed=seed,
        ),
        "a2d": make_a2d(
            root / "a2d" / "Release",
            num_videos=num_videos,
            num_frames=num_frames,
            image_size=image_size,
            seed=seed,
        ),
    }
