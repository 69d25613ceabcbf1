"""Samples by identity, without loading them: their ``meta``, their picture, a file name, and the
shard of a process (whole videos or images per process)."""

from __future__ import annotations

import bisect
from typing import Any

import torch

from ..data.base import ReferringDataset


def sample_meta(dataset: torch.utils.data.Dataset, index: int) -> dict[str, Any]:
    """The ``meta`` of sample ``index`` without loading its image where the Dataset allows it
    (:class:`ReferringDataset`, ``ConcatDataset`` and ``Subset`` of them)."""
    if isinstance(dataset, ReferringDataset):
        ti, si = dataset._index[index]
        target = dataset.targets[ti]
        return {**target.meta, **(target.sentences[si].meta if si >= 0 else {})}
    if isinstance(dataset, torch.utils.data.ConcatDataset):
        d = bisect.bisect_right(dataset.cumulative_sizes, index)
        offset = dataset.cumulative_sizes[d - 1] if d > 0 else 0
        return sample_meta(dataset.datasets[d], index - offset)
    if isinstance(dataset, torch.utils.data.Subset):
        return sample_meta(dataset.dataset, dataset.indices[index])
    return dict(dataset[index]["meta"])


def image_key(meta: dict[str, Any]) -> tuple | None:
    """Identity of a sample's picture (None when the meta does not say)."""
    if "video" in meta and "frame" in meta:
        return (meta.get("dataset"), meta["video"], meta["frame"])
    if "image_id" in meta:
        return (meta.get("dataset"), meta["image_id"])
    return None


def sample_name(meta: dict[str, Any]) -> str:
    """A file-name-safe identifier of a sample, e.g. ``img42_ref7_sent19`` or
    ``bike-packing_00003_obj2_ann1_full_video_s1-0``."""
    if "video" in meta:
        parts = [str(meta["video"]), str(meta.get("frame", "")), f"obj{meta.get('object_id', '')}"]
        if "annotator" in meta:
            parts.append(f"ann{meta['annotator']}")
        if "kind" in meta:
            parts.append(str(meta["kind"]))
    else:
        parts = [f"img{meta.get('image_id', '')}", f"ref{meta.get('ref_id', '')}"]
    parts.append(f"s{meta.get('sent_id', '')}")
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in "_".join(parts))


def shard_indices(dataset: torch.utils.data.Dataset, rank: int, world: int) -> list[int]:
    """Sample indices of process ``rank`` of ``world``: whole videos (or images) go round-robin in
    order of first appearance, so no frame's objects are split between processes."""
    if world == 1:
        return list(range(len(dataset)))
    groups: dict[Any, int] = {}
    out = []
    for i in range(len(dataset)):
        meta = sample_meta(dataset, i)
        key = ("video", meta["video"]) if "video" in meta else image_key(meta) or ("index", i)
        if groups.setdefault(key, len(groups)) % world == rank:
            out.append(i)
    return out
