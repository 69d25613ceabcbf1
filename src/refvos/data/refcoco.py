"""RefCOCO / RefCOCO+ / RefCOCOg as a torch Dataset, read through :class:`~.refer.REFER`."""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataFormatError, InputError
from .base import ReferringDataset, Sentence, Target, read_rgb
from .refer import LAYOUT, MASK_RULES, REFER

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


class RefCOCODataset(ReferringDataset):
    """Refs of one split. ``meta``: dataset, image_id, ref_id, ann_id, sent_id, split.

    ``mask_rule``: ``"union"`` (default) or ``"original"``, how an annotation's polygons make the
    mask (:data:`refvos.data.refer.MASK_RULES`; the original keeps pixels covered exactly once).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        dataset: str = "refcoco",
        split: str = "train",
        mode: str = "train",
        split_by: str | None = None,
        max_tokens: int = 20,
        mask_rule: str = "union",
        **kwargs,
    ) -> None:
        super().__init__(mode, max_tokens, **kwargs)
        if mask_rule not in MASK_RULES:
            raise InputError(
                f"RefCOCO mask rule must be one of {list(MASK_RULES)}, got {mask_rule!r}"
            )
        self.mask_rule = mask_rule
        split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
        self.refer = REFER(root, dataset, split_by)
        existing = sorted({r["split"] for r in self.refer.data["refs"]})
        try:
            ref_ids = self.refer.getRefIds(split=split)
        except DataFormatError:
            ref_ids = []
        if not ref_ids:
            raise DataFormatError(
                f"split {split!r} of {dataset} (splitBy {split_by}) under {root} has no "
                f"expressions; its splits are {', '.join(existing) or 'none'}"
            )
        for ref_id in ref_ids:
            ref = self.refer.Refs[ref_id]
            meta = {
                "dataset": dataset,
                "image_id": ref["image_id"],
                "ref_id": ref_id,
                "ann_id": ref["ann_id"],
                "split": ref["split"],
            }
            sentences = [
                Sentence(s.get("raw") or s["sent"], {"sent_id": s["sent_id"]})
                for s in ref["sentences"]
            ]
            self.targets.append(Target(meta, sentences, ref))
        self._finalize()

    def load(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        ref = target.source
        img = self.refer.Imgs[ref["image_id"]]
        image = read_rgb(self.refer.IMAGE_DIR / img["file_name"], LAYOUT)
        return image, self.refer.getMask(ref, self.mask_rule, size=image.shape[:2])["mask"]
