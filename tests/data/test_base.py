"""Expressions of a data set (plain, Subset, ConcatDataset) and its truncation report."""

import torch

from refvos.data import build_dataset
from refvos.data.base import dataset_expressions, dataset_truncation
from refvos.tokenization import get_tokenizer


def test_expressions_of_plain_subset_and_concatenated_sets(refcoco_root):
    val = build_dataset("refcoco", refcoco_root, "val", mode="eval")
    texts = list(dict.fromkeys(s.text for t in val.targets for s in t.sentences))
    assert dataset_expressions(val) == texts and len(texts) > 1
    first = val._index[0][0]
    assert dataset_expressions(torch.utils.data.Subset(val, [0])) == [
        s.text for s in val.targets[first].sentences
    ]
    test_a = build_dataset("refcoco", refcoco_root, "testA", mode="eval")
    both = dataset_expressions(torch.utils.data.ConcatDataset([val, test_a]))
    assert both == list(dict.fromkeys(texts + dataset_expressions(test_a)))
    assert dataset_expressions(torch.utils.data.TensorDataset(torch.zeros(2))) is None


def test_truncation_at_the_data_sets_own_limit(refcoco_root):
    short = build_dataset("refcoco", refcoco_root, "val", mode="eval", max_tokens=4)
    texts = dataset_expressions(short)
    report = dataset_truncation(short)
    tok = get_tokenizer()
    assert report["token_limit"] == 4 and report["distinct_expressions"] == len(texts)
    assert report["over_token_limit"] == sum(tok.count_tokens(t) > 4 for t in texts) > 0
    assert len(report["examples"]) == min(3, report["over_token_limit"])
    assert (
        dataset_truncation(build_dataset("refcoco", refcoco_root, "val", mode="eval"))[
            "over_token_limit"
        ]
        == 0
    )
    assert dataset_truncation(torch.utils.data.TensorDataset(torch.zeros(2))) is None


def test_workers_start_from_a_fork_server_once_openvino_is_loaded(refcoco_root, monkeypatch):
    """Forking a process that runs OpenVINO's threads crashes it now and then: with OpenVINO
    loaded, the project's DataLoader starts its workers from a fork server, and they still
    deliver the data set's samples; without it, PyTorch's default start method is kept."""
    import sys
    import types

    from refvos.data import collate
    from refvos.data.base import DataLoader, worker_context

    monkeypatch.delitem(sys.modules, "openvino", raising=False)
    assert worker_context() is None
    assert DataLoader([1, 2], num_workers=1).multiprocessing_context is None
    monkeypatch.setitem(sys.modules, "openvino", types.ModuleType("openvino"))
    assert worker_context() == "forkserver"
    ds = build_dataset("refcoco", refcoco_root, "val", "eval")
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate)
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    batch = next(iter(loader))
    assert batch["image"].shape[0] == 2 and batch["sentence"] == [
        ds[0]["sentence"],
        ds[1]["sentence"],
    ]
    assert DataLoader([1, 2]).multiprocessing_context is None  # no workers: nothing to start
