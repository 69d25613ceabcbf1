"""The REFER API (RefCOCO, RefCOCO+, RefCOCOg) in Python 3: a drop-in for the original refer.py.

Layout: ``<data_root>/<dataset>/refs(<splitBy>).p`` (read with :func:`refvos.io.safe_pickle.safe_load`),
``<data_root>/<dataset>/instances.json`` (COCO images / annotations / categories) and images in
``<data_root>/images/mscoco/images/train2014/``.

:meth:`REFER.getMask` returns, by default, the **union** of a ref's polygons. The original
(miriambellver/refvos ``refer_utils/refer.py`` ``getMask``) sums the polygons' masks and its
data set (``data/dataset_refer_bert.py``) keeps the pixels equal to 1, so where two polygons of
one annotation overlap the object becomes background; ``rule="original"`` reproduces that, for
exact reproduction of the published numbers (see :data:`MASK_RULES`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import DataFormatError
from ..io.safe_pickle import safe_load
from ..media.image import MAX_PIXELS

SPLIT_BYS: dict[str, tuple[str, ...]] = {
    "refcoco": ("unc", "google"),
    "refcoco+": ("unc",),
    "refcocog": ("umd", "google"),
    "refclef": ("unc", "berkeley"),
}
LAYOUT = (
    "<data_root>/<dataset>/refs(<splitBy>).p, <data_root>/<dataset>/instances.json and images in "
    "<data_root>/images/mscoco/images/train2014/"
)


# How a ref's polygons become its mask: "union" (default) or "original" (sum of the polygons'
# masks == 1, the authors' code: overlaps of an annotation's polygons are background).
MASK_RULES = ("union", "original")


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def _polygons(segmentation: list) -> list:
    polys = [p for p in segmentation if len(p) >= 6]
    if not polys:
        raise ValueError("polygon segmentation without a polygon of at least 3 points")
    return polys


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _image_entry_problem(img: Any) -> str | None:
    """What is wrong with an ``instances.json`` image entry (None: id, file_name, height, width fit)."""
    if not isinstance(img, dict) or "id" not in img:
        return f"an image entry is {type(img).__name__} without an 'id'"
    if not isinstance(img.get("file_name"), str) or not img["file_name"]:
        return f"image {img['id']!r}: 'file_name' is {img.get('file_name')!r}, expected a file name"
    h, w = img.get("height"), img.get("width")
    if not (_positive_int(h) and _positive_int(w)):
        return f"image {img['id']!r}: height {h!r} and width {w!r} must be positive integers"
    if h * w > MAX_PIXELS:
        return (
            f"image {img['id']!r}: declares {w}x{h} pixels, more than the limit of {MAX_PIXELS:,}"
        )
    return None


def _sentence_problem(sent: Any) -> str | None:
    """What is wrong with a ref's sentence (None: ``sent`` and ``raw`` are strings, ``sent_id`` an id)."""
    if not isinstance(sent, dict):
        return f"a sentence is {type(sent).__name__}, expected a dict"
    for key in ("sent", "raw"):
        if (key == "sent" or key in sent) and not isinstance(sent.get(key), str):
            return f"sentence {key!r} is {type(sent.get(key)).__name__}, expected a string"
    if not isinstance(sent.get("sent_id"), (int, str)) or isinstance(sent.get("sent_id"), bool):
        return f"'sent_id' is {type(sent.get('sent_id')).__name__}, expected an integer"
    if "tokens" in sent and not (
        isinstance(sent["tokens"], list) and all(isinstance(t, str) for t in sent["tokens"])
    ):
        return "'tokens' must be a list of strings"
    return None


def _declared_size(segmentation: Any) -> tuple[Any, Any] | None:
    """The ``(height, width)`` an RLE segmentation declares (None for polygons)."""
    if isinstance(segmentation, dict) and "size" in segmentation:
        size = segmentation["size"]
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            raise ValueError(f"RLE size {str(size)[:40]} is not [height, width]")
        return size[0], size[1]
    return None


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """One RLE for a COCO ``segmentation``: the union of its polygons, or its (un)compressed RLE."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(_polygons(segmentation), height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation:
        if isinstance(segmentation["counts"], list):  # uncompressed RLE
            h, w = segmentation["size"]
            return mask_utils.frPyObjects(segmentation, h, w)
        counts = segmentation["counts"]
        return {
            "size": list(segmentation["size"]),
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}")


class REFER:
    """Referring-expression annotations of one data set and split scheme (original API names)."""

    def __init__(
        self, data_root: str | os.PathLike, dataset: str = "refcoco", splitBy: str = "unc"
    ):
        self.data_root = Path(data_root)
        self.DATA_DIR = self.data_root / dataset
        if dataset == "refclef":
            self.IMAGE_DIR = self.data_root / "images" / "saiapr_tc-12"
        else:
            self.IMAGE_DIR = self.data_root / "images" / "mscoco" / "images" / "train2014"
        ref_file = self.DATA_DIR / f"refs({splitBy}).p"
        if not ref_file.is_file():
            hint = ""
            if dataset in SPLIT_BYS and splitBy not in SPLIT_BYS[dataset]:
                hint = f" ({dataset} is split by {' or '.join(SPLIT_BYS[dataset])})"
            raise DataFormatError(f"{ref_file}: file not found{hint}; expected {LAYOUT}")
        instances_file = self.DATA_DIR / "instances.json"
        if not instances_file.is_file():
            raise DataFormatError(f"{instances_file}: file not found; expected {LAYOUT}")
        refs = safe_load(ref_file)
        if not isinstance(refs, list):
            raise DataFormatError(f"{ref_file}: expected a list of refs, got {type(refs).__name__}")
        try:
            with open(instances_file, encoding="utf-8") as f:
                instances = json.load(f)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{instances_file}:{e.lineno}: not valid JSON ({e.msg})") from e
        except (UnicodeDecodeError, RecursionError) as e:
            raise DataFormatError(
                f"{instances_file}: not readable JSON ({type(e).__name__}: {e})"
            ) from e
        if not isinstance(instances, dict):
            raise DataFormatError(
                f"{instances_file}: expected a JSON object with 'images', 'annotations' and 'categories', "
                f"got {type(instances).__name__}"
            )
        missing = [k for k in ("images", "annotations", "categories") if k not in instances]
        if missing:
            raise DataFormatError(
                f"{instances_file}: missing key(s) {missing}; expected COCO 'images', "
                "'annotations' and 'categories'"
            )
        self.data = {
            "dataset": dataset,
            "refs": refs,
            "images": instances["images"],
            "annotations": instances["annotations"],
            "categories": instances["categories"],
        }
        self._ref_file = ref_file
        self.createIndex()

    def createIndex(self) -> None:
        """Build Refs, Anns, Imgs, Cats, Sents and the imgTo* / refTo* / sentTo* maps."""
        try:
            self._create_index()
        except DataFormatError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise DataFormatError(
                f"{self.DATA_DIR}: malformed annotations in instances.json or {self._ref_file.name} "
                f"({type(e).__name__}: {e}); expected COCO images / annotations / categories and refs with "
                "ref_id, ann_id, image_id, category_id, split and sentences[{sent, sent_id}]"
            ) from e

    def _create_index(self) -> None:
        self.Anns, self.Imgs, self.Cats, self.imgToAnns = {}, {}, {}, {}
        for ann in self.data["annotations"]:
            self.Anns[ann["id"]] = ann
            self.imgToAnns.setdefault(ann["image_id"], []).append(ann)
        for img in self.data["images"]:
            problem = _image_entry_problem(img)
            if problem is not None:
                raise DataFormatError(f"{self.DATA_DIR / 'instances.json'}: {problem}")
            self.Imgs[img["id"]] = img
        for cat in self.data["categories"]:
            self.Cats[cat["id"]] = cat["name"]
        self.Refs, self.imgToRefs, self.refToAnn, self.annToRef, self.catToRefs = {}, {}, {}, {}, {}
        self.Sents, self.sentToRef, self.sentToTokens = {}, {}, {}
        for i, ref in enumerate(self.data["refs"]):
            try:
                ref_id, ann_id = ref["ref_id"], ref["ann_id"]
                image_id, category_id = ref["image_id"], ref["category_id"]
                sentences = ref["sentences"]
                if not isinstance(ref["split"], str):
                    raise TypeError(f"'split' is {type(ref['split']).__name__}, not a string")
                if not isinstance(sentences, list):
                    raise TypeError(f"'sentences' is {type(sentences).__name__}, not a list")
            except (KeyError, TypeError) as e:
                raise DataFormatError(
                    f"{self._ref_file}: ref #{i} lacks {e}; expected dicts with ref_id, ann_id, "
                    "image_id, category_id, split and sentences[{raw, sent, tokens, sent_id}]"
                ) from e
            if ann_id not in self.Anns:
                raise DataFormatError(
                    f"{self._ref_file}: ref {ref_id} names annotation {ann_id}, which is not in "
                    f"{self.DATA_DIR / 'instances.json'}"
                )
            if image_id not in self.Imgs:
                raise DataFormatError(
                    f"{self._ref_file}: ref {ref_id} names image {image_id}, which is not in "
                    f"{self.DATA_DIR / 'instances.json'}"
                )
            self.Refs[ref_id] = ref
            self.imgToRefs.setdefault(image_id, []).append(ref)
            self.catToRefs.setdefault(category_id, []).append(ref)
            self.refToAnn[ref_id] = self.Anns[ann_id]
            self.annToRef[ann_id] = ref
            for sent in sentences:
                problem = _sentence_problem(sent)
                if problem is not None:
                    raise DataFormatError(f"{self._ref_file}: ref {ref_id}: {problem}")
                self.Sents[sent["sent_id"]] = sent
                self.sentToRef[sent["sent_id"]] = ref
                self.sentToTokens[sent["sent_id"]] = sent.get("tokens", sent["sent"].split())

    def getRefIds(self, image_ids=[], cat_ids=[], ref_ids=[], split=""):  # noqa: B006 - original API
        """Ids of the refs on ``image_ids`` with ``cat_ids``, among ``ref_ids``, in ``split``.

        ``split``: ``train``, ``val``, ``test`` (every test split), ``testA``/``testB``/``testC``
        (refs whose split contains that letter) or ``testAB``/``testBC``/``testAC``.
        """
        image_ids, cat_ids, ref_ids = _as_list(image_ids), _as_list(cat_ids), _as_list(ref_ids)
        if image_ids:
            refs = [r for image_id in image_ids for r in self.imgToRefs.get(image_id, [])]
        else:
            refs = self.data["refs"]
        if cat_ids:
            refs = [r for r in refs if r["category_id"] in cat_ids]
        if ref_ids:
            refs = [r for r in refs if r["ref_id"] in ref_ids]
        if split:
            if split in ("testA", "testB", "testC"):
                refs = [
                    r for r in refs if r["split"].startswith("test") and split[-1] in r["split"][4:]
                ]
            elif split == "test":
                refs = [r for r in refs if "test" in r["split"]]
            elif split in ("testAB", "testBC", "testAC", "train", "val"):
                refs = [r for r in refs if r["split"] == split]
            else:
                raise DataFormatError(
                    f"no such split {split!r}; expected train, val, test, testA, testB, testC, "
                    "testAB, testBC or testAC"
                )
        return [r["ref_id"] for r in refs]

    def getAnnIds(self, image_ids=[], cat_ids=[], ref_ids=[]):  # noqa: B006 - original API
        """Ids of the annotations on ``image_ids`` with ``cat_ids`` and referred to by ``ref_ids``."""
        image_ids, cat_ids, ref_ids = _as_list(image_ids), _as_list(cat_ids), _as_list(ref_ids)
        if image_ids:
            anns = [a for image_id in image_ids for a in self.imgToAnns.get(image_id, [])]
        else:
            anns = self.data["annotations"]
        if cat_ids:
            anns = [a for a in anns if a["category_id"] in cat_ids]
        ann_ids = [a["id"] for a in anns]
        if ref_ids:
            wanted = {self.Refs[r]["ann_id"] for r in ref_ids}
            ann_ids = [a for a in ann_ids if a in wanted]
        return ann_ids

    def getImgIds(self, ref_ids=[]):  # noqa: B006 - original API
        """Ids of the images of ``ref_ids`` (all images when empty)."""
        ref_ids = _as_list(ref_ids)
        if ref_ids:
            return list(dict.fromkeys(self.Refs[r]["image_id"] for r in ref_ids))
        return list(self.Imgs)

    def getCatIds(self):
        return list(self.Cats)

    def loadRefs(self, ref_ids=[]):  # noqa: B006 - original API
        return [self.Refs[r] for r in _as_list(ref_ids)]

    def loadAnns(self, ann_ids=[]):  # noqa: B006 - original API
        return [self.Anns[a] for a in _as_list(ann_ids)]

    def loadImgs(self, image_ids=[]):  # noqa: B006 - original API
        return [self.Imgs[i] for i in _as_list(image_ids)]

    def loadCats(self, cat_ids=[]):  # noqa: B006 - original API
        return [self.Cats[c] for c in _as_list(cat_ids)]

    def getRefBox(self, ref_id):
        """The ref's box ``[x, y, w, h]``."""
        return self.refToAnn[ref_id]["bbox"]

    def getMask(self, ref, rule: str = "union", size: tuple[int, int] | None = None) -> dict:
        """``{"mask": uint8 (H, W) 0/1, "area": int}`` of the ref's segmentation: the union of
        its polygons, or with ``rule="original"`` the pixels covered by exactly one of them.

        ``size``: the ``(H, W)`` of the image file, when read; the sizes the annotation declares
        (its image's height and width, an RLE's size) are checked against it and against each
        other BEFORE anything is decoded, so an annotation cannot make refvos allocate more than
        its image."""
        if rule not in MASK_RULES:
            raise ValueError(f"mask rule must be one of {MASK_RULES}, got {rule!r}")
        ann = self.refToAnn[ref["ref_id"]]
        image = self.Imgs[ref["image_id"]]
        where = f"{self.DATA_DIR / 'instances.json'}: annotation {ann.get('id')}"
        height, width = image["height"], image["width"]
        if size is not None and (height, width) != tuple(size):
            raise DataFormatError(
                f"{self.DATA_DIR / 'instances.json'}: image {image['id']} declares {width}x{height} but "
                f"{image['file_name']} is {size[1]}x{size[0]}"
            )
        try:
            declared = _declared_size(ann["segmentation"])
            if declared is not None and declared != (height, width):
                raise ValueError(
                    f"its RLE is {declared[1]}x{declared[0]} but image {image['id']} is "
                    f"{width}x{height}"
                )
            if rule == "original" and isinstance(ann["segmentation"], list):
                parts = mask_utils.decode(
                    mask_utils.frPyObjects(
                        _polygons(ann["segmentation"]), image["height"], image["width"]
                    )
                )  # (H, W, N)
                m = (parts.astype(np.int64).sum(axis=2) == 1).astype(np.uint8)
                return {"mask": m, "area": int(m.sum())}
            rle = segmentation_to_rle(ann["segmentation"], height, width)
            m = mask_utils.decode(rle).astype(np.uint8)
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            raise DataFormatError(
                f"{where}: bad segmentation ({str(e)[:200]}); expected a list of polygons or an RLE "
                "dict with size and counts"
            ) from e
        return {"mask": m, "area": int(m.sum())}
