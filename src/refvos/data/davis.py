"""DAVIS-2017 with Khoreva et al.'s referring expressions as a torch Dataset (root: ``davis2017/``).

Layout: ``DAVIS/ImageSets/2017/{train,val}.txt``, ``DAVIS/JPEGImages/480p/<seq>/<frame>.jpg``,
``DAVIS/Annotations/480p/<seq>/<frame>.png`` (palette PNG, object ids 1..N) and
``davis_text_annotations/Davis17_annot{1,2}[_full_video].txt`` with lines
``<seq> <object id> "<expression>"`` (annotator 2's files are latin-1).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputError
from .base import ReferringDataset, Sentence, Target, read_rgb

LAYOUT = (
    "davis2017/DAVIS/ImageSets/2017/<split>.txt, davis2017/DAVIS/JPEGImages/480p/<seq>/<frame>.jpg, "
    "davis2017/DAVIS/Annotations/480p/<seq>/<frame>.png and "
    "davis2017/davis_text_annotations/Davis17_annot<1|2>[_full_video].txt"
)
KINDS = {"first_frame": "", "full_video": "_full_video"}
_LINE = re.compile(r'^(\S+)\s+(\d+)\s+"(.*)"\s*$')


def expression_file(root: Path, annotator: int, kind: str) -> Path:
    return root / "davis_text_annotations" / f"Davis17_annot{annotator}{KINDS[kind]}.txt"


def read_expressions(path: Path) -> dict[tuple[str, int], list[str]]:
    """``{(seq, object_id): [expression, ...]}`` from one Khoreva expression file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise DataFormatError(f"{path}: file not found; expected {LAYOUT}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    out: dict[tuple[str, int], list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m or not m.group(3).strip():
            raise DataFormatError(
                f"{path}:{lineno}: expected '<sequence> <object id> \"<expression>\"', got {line!r}"
            )
        out.setdefault((m.group(1), int(m.group(2))), []).append(m.group(3).strip())
    return out


def read_object_ids(path: Path) -> np.ndarray:
    """uint8 ``(H, W)`` object ids of a palette annotation PNG."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise DataFormatError(
                    f"{path}: annotation PNG has mode {im.mode}; expected a palette (P) image of "
                    "object ids"
                )
            return np.asarray(im)
    except FileNotFoundError as e:
        raise DataFormatError(f"{path}: annotation not found; expected {LAYOUT}") from e
    except DataFormatError:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as e:  # truncated, not an image
        raise DataFormatError(
            f"{path}: cannot read the annotation PNG ({type(e).__name__}: {e}); expected a palette (P) image "
            "of object ids"
        ) from e


class DAVISDataset(ReferringDataset):
    """Samples are (frame, object, expression) over every frame of the split's sequences.

    ``annotator``: 1, 2 or ``"both"``; ``None`` (default) = ``"both"`` in train mode, as the
    original (miriambellver/refvos ``data/davis2017.py`` draws each training sample's expression
    from either annotator's file), and 1 in eval mode (its test setting). ``kind``:
    ``"first_frame"`` or ``"full_video"``.
    ``meta``: dataset, video, frame, object_id, sent_id, annotator, kind, split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        mode: str = "eval",
        annotator: int | str | None = None,
        kind: str = "first_frame",
        max_tokens: int = 10,
        **kwargs,
    ) -> None:
        super().__init__(mode, max_tokens, **kwargs)
        if annotator is None:
            annotator = "both" if mode == "train" else 1
        if annotator not in (1, 2, "both"):
            raise InputError(f"annotator must be 1, 2 or 'both', got {annotator!r}")
        if kind not in KINDS:
            raise InputError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        self.root = root = Path(root)
        split_file = root / "DAVIS" / "ImageSets" / "2017" / f"{split}.txt"
        if not split_file.is_file():
            existing = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise DataFormatError(
                f"split {split!r}: {split_file} not found"
                + (
                    f"; the splits there are {', '.join(existing)}"
                    if existing
                    else f"; expected {LAYOUT}"
                )
            )
        seqs = [s.strip() for s in split_file.read_text().splitlines() if s.strip()]
        annotators = (1, 2) if annotator == "both" else (annotator,)
        exprs: dict[tuple[str, int], list[Sentence]] = {}
        for a in annotators:
            for (seq, obj), texts in read_expressions(expression_file(root, a, kind)).items():
                for j, t in enumerate(texts):
                    sent = Sentence(t, {"sent_id": f"{a}-{j}", "annotator": a})
                    exprs.setdefault((seq, obj), []).append(sent)
        for seq in seqs:
            frame_dir = root / "DAVIS" / "JPEGImages" / "480p" / seq
            frames = sorted(p.stem for p in frame_dir.glob("*.jpg"))
            if not frames:
                raise DataFormatError(f"{frame_dir}: no frame (*.jpg); expected {LAYOUT}")
            objects = sorted(obj for (s, obj) in exprs if s == seq)
            if not objects:
                raise DataFormatError(
                    f"{expression_file(root, annotators[0], kind)}: no expression for sequence "
                    f"{seq!r} of {split_file}"
                )
            for frame in frames:
                anno = root / "DAVIS" / "Annotations" / "480p" / seq / f"{frame}.png"
                if not anno.is_file():
                    raise DataFormatError(f"{anno}: annotation not found; expected {LAYOUT}")
                for obj in objects:
                    meta = {
                        "dataset": "davis",
                        "video": seq,
                        "frame": frame,
                        "object_id": obj,
                        "kind": kind,
                        "split": split,
                    }
                    self.targets.append(
                        Target(meta, exprs[(seq, obj)], (frame_dir / f"{frame}.jpg", anno, obj))
                    )
        self._finalize()

    def load(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        image_path, anno, obj = target.source
        return read_rgb(image_path, LAYOUT), (read_object_ids(anno) == obj).astype(np.uint8)
