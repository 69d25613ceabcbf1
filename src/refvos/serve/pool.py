"""The model side of ``refvos serve``: ``workers`` predictors sharing one network, and admission.

A request is admitted (takes one of ``workers + queue`` places) only once its whole body has
arrived, so a slow client never holds a place; more admitted requests than places get
:class:`BusyError` (503) at once. Admitted jobs run on a thread pool of ``workers + queue``
threads, each waiting up to ``queue_timeout`` for a free predictor.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .limits import Limits

T = TypeVar("T")


class BusyError(Exception):
    """All model workers and queue places are taken, or no worker became free in time."""


class WorkerPool:
    """``admit()`` (a context manager) takes a place or raises :class:`BusyError`;
    ``await run(job)`` runs ``job(predictor)`` on a worker thread."""

    def __init__(self, predictor_factory: Callable[[], Any], limits: Limits) -> None:
        self.limits = limits
        self._predictors: queue.Queue = queue.Queue()
        for _ in range(limits.workers):
            self._predictors.put(predictor_factory())
        self._places = limits.workers + limits.queue
        self._executor = ThreadPoolExecutor(self._places, thread_name_prefix="refvos-worker")
        self._lock = threading.Lock()
        self.active = 0
        self.served = 0
        self.refused = 0
        self.failed = 0

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        with self._lock:
            if self.active >= self._places:
                self.refused += 1
                raise BusyError(
                    f"server busy: {self.limits.workers} worker(s) and {self.limits.queue} queue place(s) "
                    "are taken; try again in a moment"
                )
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1

    def _with_predictor(self, job: Callable[[Any], T]) -> T:
        try:
            predictor = self._predictors.get(timeout=self.limits.queue_timeout)
        except queue.Empty:
            self.count("refused")
            raise BusyError(
                f"server busy: no model worker became free within {self.limits.queue_timeout:g} s; try again"
            ) from None
        try:
            return job(predictor)
        finally:
            self._predictors.put(predictor)

    def run_now(self, job: Callable[[Any], T]) -> T:
        """Run ``job(predictor)`` in the calling thread (at start, before any request)."""
        return self._with_predictor(job)

    async def run(self, job: Callable[[Any], T]) -> T:
        """Run ``job(predictor)`` on a worker thread (call inside ``admit()``)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._with_predictor, job
        )

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (decoding, no predictor) on a worker thread (call inside ``admit()``)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
