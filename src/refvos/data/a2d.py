"""A2D-Sentences as a torch Dataset (root: the ``Release/`` folder).

Layout: ``a2d_annotation.txt`` (CSV ``video_id,instance_id,query``; a quoted query keeps its
commas), ``videoset.csv`` (last column 0 = train, 1 = test), frames ``pngs320H/<video>/<frame>.png``,
annotated frames listed by ``Annotations/col/<video>/*.png``, masks in
``a2d_annotation_with_instances/<video>/<frame>.h5`` (``instance``: ids; ``reMask``: W x H masks,
``(N, W, H)`` for several instances or one 2-D mask).

Two facts of the published files, handled as the authors' code (miriambellver/refvos,
``data/a2d.py``) handles them:

- ``a2d_annotation.txt`` has one known mistake, a row of video ``T6bNPuKV-wY`` whose instance id
  is ``1 (copy)``. The original drops it (it keeps only rows whose instance id is shorter than 3
  characters) and MTTR filters ``instance_id != '1 (copy)'``; it is skipped here with one log
  message. Any other row without a numeric instance id is a :class:`DataFormatError`.
- A query containing a comma: the original reads the file with ``l.split(',')`` and takes the
  third piece, so such a query is cut at its first comma (a CSV-quoted one also keeps its opening
  ``"``). ``query_rule="original"`` reads the queries that way, the text the released A2D models
  were trained and scored on; ``"full"`` (the default) parses the CSV and keeps the whole query.
  Where the two differ, the sentence's meta holds the annotated query as ``full_query``. The
  rule applies to ``a2d_annotation.txt``; the augmented files (``queries_file``, ``;``-separated,
  which the original's reader cannot parse) are read whole.
- A (video, instance) pair on several rows: the original stores the queries in a dict keyed by
  video and instance, so only the pair's last row counts (``repeated_rows="last"``);
  ``"all"`` (the default) keeps every row's query as a sentence of the pair.
- Every annotated frame of a video is a sample for every instance of that video. Where the
  instance is not among the frame's ``.h5`` instances, the mask is all zero and ``meta["present"]``
  is False: the original trains on such frames and scores them with IoU 0 (their predicted
  pixels add to the union); MTTR's protocol leaves them out (``refvos test``'s ``mttr`` block).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputError
from ..media.image import MAX_PIXELS
from .annotations import load_augmented_expressions
from .base import ReferringDataset, Sentence, Target, read_rgb

LAYOUT = (
    "Release/a2d_annotation.txt, Release/videoset.csv, Release/pngs320H/<video>/<frame>.png, "
    "Release/Annotations/col/<video>/<frame>.png and "
    "Release/a2d_annotation_with_instances/<video>/<frame>.h5"
)
SPLITS = {"train": 0, "test": 1}
# How a query is read from a2d_annotation.txt: the whole CSV field, or the authors' l.split(',')[2]
QUERY_RULES = ("full", "original")
# Rows repeating a (video, instance) pair: every query kept, or only the last row's (the authors' dict)
REPEATED_ROWS = ("all", "last")
# The published file's one annotation mistake (video T6bNPuKV-wY), dropped by the original and MTTR.
KNOWN_BAD_INSTANCE_ID = "1 (copy)"

log = logging.getLogger(__name__)
_reported: set[str] = set()  # files whose known mistake was already logged (once per process)


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from e


def read_queries(path: Path, rule: str = "full") -> dict[tuple[str, int], list[tuple[str, str]]]:
    """``{(video, instance_id): [(query, full query), ...]}`` from ``a2d_annotation.txt``.

    ``rule`` (:data:`QUERY_RULES`): ``"full"`` parses the CSV (a quoted query keeps its commas, an
    unquoted one is put back together), so both texts are the annotated query; ``"original"``
    gives as query what the authors' ``l.split(',')[2]`` gives: the text before the query's first
    comma, CSV quotes left in place."""
    if rule not in QUERY_RULES:
        raise InputError(f"A2D query rule must be one of {list(QUERY_RULES)}, got {rule!r}")
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; expected {LAYOUT}")
    text = _read_utf8(path)
    # the original's view: universal-newline lines, each split at every comma
    lines = io.StringIO(text, newline=None).readlines() if rule == "original" else []
    out: dict[tuple[str, int], list[tuple[str, str]]] = {}
    skipped: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for row in reader:
        lineno, start = (
            start,
            reader.line_num + 1,
        )  # the row's first line (a quoted field may span lines)
        if not row or not "".join(row).strip():
            continue
        if lineno == 1 and row[0].strip() == "video_id":
            continue
        if len(row) >= 2 and row[1].strip() == KNOWN_BAD_INSTANCE_ID:
            skipped.append(f"{row[0].strip()} (line {lineno})")
            continue
        # An unquoted query with commas is split by the CSV reader: put it back together.
        if (
            len(row) < 3
            or not row[1].strip().isascii()
            or not row[1].strip().isdigit()
            or not ",".join(row[2:]).strip()
        ):
            raise DataFormatError(
                f"{path}:{lineno}: expected 'video_id,instance_id,query', got {row!r}"
            )
        key = (row[0].strip(), int(row[1]))
        full = query = ",".join(row[2:]).strip()
        if rule == "original":
            pieces = lines[lineno - 1].rstrip("\n").split(",")
            if len(pieces) < 3:
                raise DataFormatError(
                    f"{path}:{lineno}: no third comma-separated piece on the line, which "
                    "--a2d-query original reads as the query (as the authors' code)"
                )
            query = pieces[2].strip()
        out.setdefault(key, []).append((query, full))
    if skipped and str(path) not in _reported:
        _reported.add(str(path))
        log.warning(
            "%s: skipped %d row(s) with instance id %r, the published file's known "
            "annotation mistake (as the original and MTTR do): %s",
            path,
            len(skipped),
            KNOWN_BAD_INSTANCE_ID,
            ", ".join(skipped),
        )
    return out


def read_videoset(path: Path) -> dict[str, int]:
    """``{video: usage}`` from ``videoset.csv`` (usage = last column: 0 train, 1 test)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; expected {LAYOUT}")
    out: dict[str, int] = {}
    with io.StringIO(_read_utf8(path), newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) < 2 or row[-1].strip() not in ("0", "1"):
                raise DataFormatError(
                    f"{path}:{lineno}: expected 'video_id,...,usage' with usage 0 (train) or "
                    f"1 (test), got {row!r}"
                )
            out[row[0].strip()] = int(row[-1])
    return out


MAX_INSTANCES = 1000  # instance ids of one frame's .h5
MASK_SCALE_LIMIT = (
    8  # a mask side may be at most this many times its frame's (full-resolution masks)
)


def _instance_ids(f: h5py.File) -> list[int]:
    data = f["instance"]
    if data.size > MAX_INSTANCES:
        raise ValueError(f"'instance' holds {data.size:,} ids, more than {MAX_INSTANCES}")
    return [int(x) for x in np.asarray(data).reshape(-1)]


def _mask_problem(
    shape: tuple[int, ...], dtype: np.dtype, count: int, size: tuple[int, int] | None
) -> str | None:
    """What is wrong with a ``reMask`` dataset of ``shape`` / ``dtype`` for ``count`` ids and a
    frame of ``size`` ``(H, W)``, judged from its header (None: it can be read)."""
    if dtype.kind not in "biuf":
        return f"reMask has dtype {dtype}; expected numbers (0/1 masks)"
    if (
        len(shape) not in (2, 3)
        or (len(shape) == 3 and shape[0] != count)
        or (len(shape) == 2 and count != 1)
    ):
        return f"reMask has shape {shape} for {count} instance id(s); expected (N, W, H) or a single (W, H) mask"
    w, h = shape[-2], shape[-1]
    if w * h > MAX_PIXELS:
        return f"reMask declares {w}x{h} masks, more than the limit of {MAX_PIXELS:,} pixels"
    if size is not None and (h > MASK_SCALE_LIMIT * size[0] or w > MASK_SCALE_LIMIT * size[1]):
        return (
            f"reMask declares {w}x{h} masks for a {size[1]}x{size[0]} frame (at most {MASK_SCALE_LIMIT} "
            "times its sides)"
        )
    return None


def read_instance_masks(
    path: Path, size: tuple[int, int] | None = None, ids_only: bool = False
) -> tuple[list[int], np.ndarray | None]:
    """Instance ids and masks ``(N, H, W)`` uint8 0/1 of one annotated frame's ``.h5``.

    ``size``: the frame's ``(H, W)``; the masks' declared shape and dtype are checked (against
    it and :data:`~refvos.media.image.MAX_PIXELS`) before they are read, so a small compressed file
    cannot make refvos allocate gigabytes. ``ids_only``: read the ids, not the masks (None)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: mask file not found; expected {LAYOUT}")
    try:
        with h5py.File(path, "r") as f:
            ids = _instance_ids(f)
            data = f["reMask"]
            problem = _mask_problem(tuple(data.shape), data.dtype, len(ids), size)
            if problem is not None:
                raise DataFormatError(f"{path}: {problem}")
            masks = None if ids_only else np.asarray(data)
    except DataFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise DataFormatError(
            f"{path}: cannot read datasets 'instance' and 'reMask' ({type(e).__name__}: {e}); expected an HDF5 file "
            "with instance ids and W x H masks"
        ) from e
    if masks is None:
        return ids, None
    if masks.ndim == 2:
        masks = masks[None]
    return ids, (masks.transpose(0, 2, 1) > 0).astype(np.uint8)


class A2DDataset(ReferringDataset):
    """Samples are (annotated frame, instance, query) for every annotated frame of a video and
    every instance of that video with a query. ``meta``: dataset, video, frame, object_id,
    sent_id (index of the query of that instance), split, present (False: the instance is not
    annotated in that frame, its mask is all zero), and ``full_query`` where ``query_rule``
    (:data:`QUERY_RULES`) cut the query the model reads. ``repeated_rows``
    (:data:`REPEATED_ROWS`): ``"last"`` keeps only the last row of a repeated (video, instance)
    pair of ``a2d_annotation.txt``, as the original."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        mode: str = "train",
        max_tokens: int = 10,
        queries_file: str | os.PathLike | None = None,
        query_rule: str = "full",
        repeated_rows: str = "all",
        **kwargs,
    ) -> None:
        super().__init__(mode, max_tokens, **kwargs)
        if split not in SPLITS:
            raise InputError(f"A2D split must be one of {list(SPLITS)}, got {split!r}")
        if repeated_rows not in REPEATED_ROWS:
            raise InputError(
                f"A2D repeated_rows must be one of {list(REPEATED_ROWS)}, got {repeated_rows!r}"
            )
        self.root = root = Path(root)
        self.query_rule, self.repeated_rows = query_rule, repeated_rows
        queries = read_queries(root / "a2d_annotation.txt", query_rule)
        if repeated_rows == "last":
            queries = {k: qs[-1:] for k, qs in queries.items()}
        if queries_file is not None:
            # The augmented sets replace the queries of the (video, instance) pairs they cover.
            queries = {
                k: [(q, q) for q in ([v] if isinstance(v, str) else v)]
                for k, v in load_augmented_expressions(queries_file).items()
            }
        videoset = read_videoset(root / "videoset.csv")
        by_video: dict[str, dict[int, list[str]]] = {}
        for (video, inst), qs in queries.items():
            if video not in videoset:
                raise DataFormatError(
                    f"{queries_file or root / 'a2d_annotation.txt'}: video {video!r} is not listed "
                    f"in {root / 'videoset.csv'}"
                )
            if videoset[video] == SPLITS[split]:
                by_video.setdefault(video, {})[inst] = qs
        for video in sorted(by_video):
            col = root / "Annotations" / "col" / video
            frames = sorted(p.stem for p in col.glob("*.png"))
            if not frames:
                raise DataFormatError(f"{col}: no annotated frame (*.png); expected {LAYOUT}")
            for frame in frames:
                image_path = root / "pngs320H" / video / f"{frame}.png"
                if not image_path.is_file():
                    raise DataFormatError(f"{image_path}: frame not found; expected {LAYOUT}")
                h5 = root / "a2d_annotation_with_instances" / video / f"{frame}.h5"
                ids, _ = read_instance_masks(h5, ids_only=True)
                for inst in sorted(by_video[video]):
                    meta = {
                        "dataset": "a2d",
                        "video": video,
                        "frame": frame,
                        "object_id": inst,
                        "split": split,
                        "present": inst in ids,
                    }
                    sents = [
                        Sentence(q, {"sent_id": j, **({"full_query": full} if full != q else {})})
                        for j, (q, full) in enumerate(by_video[video][inst])
                    ]
                    self.targets.append(Target(meta, sents, (image_path, h5, inst)))
        self._finalize()

    def load(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        image_path, h5, inst = target.source
        image = read_rgb(image_path, LAYOUT)
        ids, masks = read_instance_masks(h5, size=image.shape[:2])
        if inst not in ids:  # absent from this frame: an all-zero mask, as the original
            return image, np.zeros(image.shape[:2], np.uint8)
        mask = masks[ids.index(inst)]
        if mask.shape != image.shape[:2]:  # masks at another resolution than pngs320H
            mask = np.asarray(
                Image.fromarray(mask).resize((image.shape[1], image.shape[0]), Image.NEAREST)
            )
        return image, mask
