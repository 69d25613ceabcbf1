"""The frozen encoders' outputs cached once: every (object, sentence) sample of the splits as the
data set reads it, one feature map per picture, one vector per distinct sentence."""

from __future__ import annotations

import torch

from refvos.data import build_dataset
from refvos.demo.feature_cache import SentenceTable, encode_split
from refvos.modeling import build_model
from refvos.modeling.surgery import split_backbone
from tests.helpers import TINY_TEXT_CONFIG


def test_encode_split_caches_each_picture_and_sentence_once(refcoco_root):
    torch.manual_seed(0)
    model = build_model(
        "refvos_lite",
        backbone_stage=2,
        head_channels=8,
        backbone_weights=None,
        text_encoder=None,
        text_config=TINY_TEXT_CONFIG,
    ).eval()
    frozen, _ = split_backbone(model, 1)
    splits = ("testA", "testB")
    table = SentenceTable()
    data = encode_split(model, refcoco_root, splits, table, "fp32", frozen)
    samples = [
        s
        for split in splits
        for s in build_dataset(
            "refcoco", refcoco_root, split, "eval", max_tokens=model.config.max_tokens
        )
    ]
    assert len(data) == len(samples) and data.sentences == [s["sentence"] for s in samples]
    assert len(data.features) == len(data.images) == len({s["meta"]["image_id"] for s in samples})
    assert len(table.index) == len({s["sentence"] for s in samples})
    with torch.no_grad():
        for n, s in enumerate(samples):
            row = int(data.image_index[n])
            assert table.index[s["sentence"]] == int(data.text_index[n])
            assert torch.equal(table.ids[int(data.text_index[n])], s["input_ids"])
            assert torch.equal(data.masks[n], s["mask"].to(torch.uint8))
            # the frozen blocks on the data set's own normalised picture
            torch.testing.assert_close(
                data.features[row], frozen(s["image"][None])[0], atol=1e-4, rtol=1e-4
            )
    # the samples of some pictures, and each one's position among them
    wanted = torch.tensor([1, 0])
    idx, local = data.samples_of(wanted)
    assert sorted(idx.tolist()) == [
        n for n in range(len(data)) if int(data.image_index[n]) in (0, 1)
    ]
    assert all(int(data.image_index[i]) == int(wanted[p]) for i, p in zip(idx, local))
    vectors = table.encode(model)
    assert (
        vectors.shape == (len(table.index), model.config.text_dim)
        and vectors.dtype == torch.float32
    )
    assert table.encode(model) is vectors  # nothing new to encode
