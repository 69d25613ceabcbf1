"""refvos.engine.samples: samples by identity and the shard of each process."""

from __future__ import annotations

from refvos.data.build import build_dataset
from refvos.engine.samples import sample_meta, shard_indices


def test_shards_keep_videos_whole_and_cover_everything(tiny_synthetic):
    ds = build_dataset("davis", tiny_synthetic["davis"], "train", mode="eval", annotator="both")
    shards = [shard_indices(ds, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(len(ds)))
    videos = [{sample_meta(ds, i)["video"] for i in s} for s in shards]
    assert not (videos[0] & videos[1]) and not (videos[1] & videos[2]) and all(videos)
