"""Training logs: ``SmoothedValue`` / ``MetricLogger`` (as in the torchvision references), a JSONL
event file and TensorBoard scalars written by rank 0, and a tqdm progress bar on rank 0.

- :class:`SmoothedValue` keeps a window of recent values and the global sum / count; the global
  part can be summed across processes (:meth:`SmoothedValue.synchronize_between_processes`).
- :class:`MetricLogger` holds named :class:`SmoothedValue` meters and
  :meth:`MetricLogger.log_every` wraps an iterable with a progress bar (rank 0) showing the
  meters, e.g. ``loss``, ``lr`` and ``img/s``.
- :class:`EventWriter` appends one JSON object per line to ``<run dir>/log.jsonl`` (each line
  whole or not at all: :func:`append_line`) and mirrors numeric fields to TensorBoard
  (``<run dir>/tensorboard``) when ``tensorboard`` is importable.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..deps import require
from .distributed import is_dist_avail_and_initialized, is_main_process


class SmoothedValue:
    """A window of the last ``window_size`` values plus their global average."""

    def __init__(self, window_size: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})") -> None:
        self.deque: deque[float] = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0
        self.fmt = fmt

    def update(self, value: float, n: int = 1) -> None:
        self.deque.append(float(value))
        self.count += n
        self.total += float(value) * n

    def synchronize_between_processes(self) -> None:
        """Sum ``count`` and ``total`` over processes (the window stays local)."""
        if not is_dist_avail_and_initialized():
            return
        t = torch.tensor([self.count, self.total], dtype=torch.float64)
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t)
        self.count, self.total = int(t[0].item()), float(t[1].item())

    @property
    def median(self) -> float:
        return float(torch.tensor(list(self.deque)).median().item()) if self.deque else math.nan

    @property
    def avg(self) -> float:
        return sum(self.deque) / len(self.deque) if self.deque else math.nan

    @property
    def global_avg(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def max(self) -> float:
        return max(self.deque) if self.deque else math.nan

    @property
    def value(self) -> float:
        return self.deque[-1] if self.deque else math.nan

    def __str__(self) -> str:
        return self.fmt.format(
            median=self.median,
            avg=self.avg,
            global_avg=self.global_avg,
            max=self.max,
            value=self.value,
        )


class MetricLogger:
    """Named meters; ``update(loss=..., lr=...)``; ``log_every(iterable, header)`` shows progress."""

    def __init__(self, delimiter: str = "  ", progress: bool = True) -> None:
        self.meters: dict[str, SmoothedValue] = defaultdict(SmoothedValue)
        self.delimiter = delimiter
        self.progress = progress

    def update(self, **kwargs: float | torch.Tensor) -> None:
        for k, v in kwargs.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            self.meters[k].update(float(v))

    def add_meter(self, name: str, meter: SmoothedValue) -> None:
        self.meters[name] = meter

    def __getattr__(self, attr: str) -> SmoothedValue:
        meters = self.__dict__.get("meters", {})
        if attr in meters:
            return meters[attr]
        raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")

    def __str__(self) -> str:
        return self.delimiter.join(f"{name}: {meter}" for name, meter in self.meters.items())

    def synchronize_between_processes(self) -> None:
        for meter in self.meters.values():
            meter.synchronize_between_processes()

    def postfix(self) -> dict[str, str]:
        """Short current values for a progress bar: ``lr`` in %.2e, others in %.4g."""
        return {
            k: (f"{m.value:.2e}" if k == "lr" else f"{m.median:.4g}")
            for k, m in self.meters.items()
        }

    def log_every(
        self,
        iterable: Iterable,
        header: str = "",
        total: int | None = None,
        print_freq: int = 10,
        initial: int = 0,
    ) -> Iterator:
        """Yield from ``iterable``; rank 0 shows a tqdm bar (refreshed every ``print_freq``
        items) with the meters, or prints a line every ``print_freq`` items without a TTY bar."""
        show = self.progress and is_main_process()
        if not show:
            yield from iterable
            return
        tqdm = require("tqdm", "progress bars").tqdm

        bar = tqdm(
            total=total,
            initial=initial,
            desc=header,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.5,
            disable=None,
        )
        start = time.time()
        try:
            for i, obj in enumerate(iterable):
                yield obj
                bar.update(1)
                if i % print_freq == 0 or (total is not None and initial + i + 1 == total):
                    bar.set_postfix(self.postfix(), refresh=False)
                    if bar.disable:
                        print(f"{header} [{initial + i + 1}/{total}]  {self}", flush=True)
        finally:
            bar.close()
        if bar.disable and total:
            print(f"{header} done in {time.time() - start:.1f}s", flush=True)


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` whole or not at all: one ``write`` on an
    ``O_APPEND`` descriptor; a failed or short write (a full disk) is cut off again, so the file
    never ends in half a line, and raised as one :class:`~refvos.errors.InputError` line."""
    from ..errors import InputError

    data = (line + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"wrote {written} of {len(data)} bytes")
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # no half line left behind
            raise InputError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        os.close(fd)


class EventWriter:
    """Rank 0 appends events to ``<log_dir>/log.jsonl`` and TensorBoard; other ranks do nothing.

    ``write(kind, step, **fields)``: one JSON line ``{"kind", "step", "time", **fields}``; numeric
    fields also go to TensorBoard as ``<kind>/<field>`` at ``step``.
    """

    def __init__(self, log_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.enabled = is_main_process()
        self.log_dir = Path(log_dir)
        self.jsonl_path = self.log_dir / "log.jsonl"
        self._tb = None
        if not self.enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional (extra "logging")
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(self.log_dir / "tensorboard"))

    @property
    def has_tensorboard(self) -> bool:
        return self._tb is not None

    def write(self, kind: str, step: int, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": int(step), "time": round(time.time(), 3), **fields}
        append_line(self.jsonl_path, json.dumps(record, sort_keys=True))
        if self._tb is not None:
            for k, v in fields.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, int(step))

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
