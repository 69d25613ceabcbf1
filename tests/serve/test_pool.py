"""refvos.serve.pool: admission (workers + queue places, then 503) and the model workers."""

from __future__ import annotations

import threading

import pytest

from refvos.serve.limits import Limits
from refvos.serve.pool import BusyError, WorkerPool


def test_admission_takes_workers_plus_queue_places_then_refuses():
    made = []
    pool = WorkerPool(
        lambda: made.append(1) or f"predictor {len(made)}", Limits(workers=2, queue=1)
    )
    try:
        assert len(made) == 2  # one predictor per worker, made at start
        with pool.admit(), pool.admit(), pool.admit():
            assert pool.active == 3
            with (
                pytest.raises(
                    BusyError, match="2 worker\\(s\\) and 1 queue place\\(s\\) are taken"
                ),
                pool.admit(),
            ):
                pass
        assert pool.active == 0 and pool.refused == 1
        with pool.admit():  # places come back
            assert pool.active == 1
    finally:
        pool.close()


def test_jobs_get_a_predictor_and_give_it_back():
    pool = WorkerPool(lambda: "the predictor", Limits(workers=1, queue=0))
    try:
        assert pool.run_now(lambda p: p.upper()) == "THE PREDICTOR"
        assert pool.run_now(lambda p: p) == "the predictor"  # returned after the first job
        with pytest.raises(ZeroDivisionError):
            pool.run_now(lambda p: 1 / 0)
        assert pool.run_now(len) == len("the predictor")  # returned after a failure too
    finally:
        pool.close()


def test_no_free_worker_within_the_timeout_is_busy():
    pool = WorkerPool(lambda: object(), Limits(workers=1, queue=1, queue_timeout=0.05))
    holding, release = threading.Event(), threading.Event()
    worker = threading.Thread(
        target=pool.run_now, args=(lambda p: holding.set() or release.wait(10),)
    )
    worker.start()
    try:
        assert holding.wait(10)
        with pytest.raises(BusyError, match="no model worker became free within 0.05 s"):
            pool.run_now(lambda p: p)
        assert pool.refused == 1
    finally:
        release.set()
        worker.join()
        pool.close()
