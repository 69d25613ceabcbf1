"""refvos.engine.resume: the sample order from (seed, epoch), each sample's randomness from its
seed, generator states saved and restored."""

from __future__ import annotations

import torch

from refvos.data.build import build_dataset
from refvos.engine.resume import ResumableSampler, SeededSamples, rng_state, set_rng_state
from tests.helpers import IMAGE_SIZE


def train_subset(root, n: int = 6) -> torch.utils.data.Dataset:
    """The first ``n`` training samples, cropped to the image size."""
    ds = build_dataset(
        "refcoco", root, "train", "train", base_size=IMAGE_SIZE, crop_size=IMAGE_SIZE
    )
    return torch.utils.data.Subset(ds, range(min(n, len(ds))))


def test_sampler_depends_on_seed_and_epoch_and_shards():
    s = ResumableSampler(10, seed=3, num_replicas=1, rank=0)
    s.set_epoch(1)
    full = list(s)
    assert len(full) == 10 and sorted(i for i, _ in full) == list(range(10))
    s.set_epoch(1, skip=4)
    assert list(s) == full[4:] and len(s) == 6
    s.set_epoch(2)
    assert list(s) != full
    shards = [list(ResumableSampler(10, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    for r, sh in enumerate(shards):
        s3 = ResumableSampler(10, seed=3, num_replicas=3, rank=r)
        s3.set_epoch(0)
        assert list(s3) == sh and len(sh) == 4  # padded to 12
    assert {i for sh in shards for i, _ in sh} == set(range(10))


def test_seeded_samples_do_not_touch_global_generators(refcoco_root):
    ds = SeededSamples(train_subset(refcoco_root, 2))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = ds[(0, 123)]
    assert torch.equal(torch.get_rng_state(), before)
    b = ds[(0, 123)]
    assert torch.equal(a["image"], b["image"]) and a["sentence"] == b["sentence"]


def test_rng_state_roundtrip_weights_only(tmp_path):
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)
    expected = (
        torch.rand(3),
        float(torch.randn(1)),
        __import__("random").random(),
        __import__("numpy").random.rand(),
    )
    set_rng_state(loaded)
    again = (
        torch.rand(3),
        float(torch.randn(1)),
        __import__("random").random(),
        __import__("numpy").random.rand(),
    )
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]
