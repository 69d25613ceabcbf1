"""SmoothedValue / MetricLogger / EventWriter and the single-process distributed helpers."""

from __future__ import annotations

import json

import pytest
import torch

from refvos.engine import distributed as du
from refvos.engine.logger import EventWriter, MetricLogger, SmoothedValue


def test_smoothed_value():
    v = SmoothedValue(window_size=2)
    for x in (1.0, 2.0, 4.0):
        v.update(x)
    assert v.value == 4.0 and v.avg == 3.0 and v.global_avg == pytest.approx(7 / 3) and v.max == 4.0


def test_metric_logger_passes_items_through():
    logger = MetricLogger(progress=True)
    seen = []
    for i in logger.log_every(range(5), header="t", total=5, print_freq=2):
        logger.update(loss=torch.tensor(float(i)), lr=0.1)
        seen.append(i)
    assert seen == list(range(5)) and logger.loss.global_avg == 2.0 and "loss" in str(logger)


def test_event_writer_jsonl(tmp_path):
    w = EventWriter(tmp_path, tensorboard=False)
    w.write("train", 3, loss=0.5, lr=0.01)
    w.write("val", 3, overall_iou=0.25)
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert (
        [r["kind"] for r in rows] == ["train", "val"]
        and rows[0]["loss"] == 0.5
        and rows[0]["step"] == 3
    )


def test_single_process_helpers():
    assert du.get_world_size() == 1 and du.get_rank() == 0 and du.is_main_process()
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(du.reduce_tensor(t), t) and du.all_gather_object(3) == [3]
    calls = []
    du.save_on_master(calls.append, 1)
    assert calls == [1]
    assert du.init_distributed_mode("cpu") == torch.device("cpu")


def test_a_full_disk_is_one_error_and_leaves_only_whole_lines(tmp_path, monkeypatch):
    """ENOSPC half-way through a line (a real short write, then the error): one InputError naming
    the file, and log.jsonl still ends with a whole line; /dev/full: the same error."""
    import errno
    import json
    import os

    import pytest

    import refvos.engine.logger as logger
    from refvos.errors import InputError

    w = EventWriter(tmp_path, tensorboard=False)
    w.write("train", 1, loss=0.5)
    real_write = os.write

    def half_then_enospc(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(logger.os, "write", half_then_enospc)
    with pytest.raises(InputError, match=r"cannot write .*log\.jsonl: No space left on device"):
        w.write("train", 2, loss=0.25)
    monkeypatch.undo()
    text = (tmp_path / "log.jsonl").read_text()
    assert text.endswith("\n") and [json.loads(line)["step"] for line in text.splitlines()] == [1]
    full = tmp_path / "full"
    full.mkdir()
    (full / "log.jsonl").symlink_to("/dev/full")
    with pytest.raises(InputError, match="No space left on device"):
        EventWriter(full, tensorboard=False).write("train", 1, loss=0.5)
