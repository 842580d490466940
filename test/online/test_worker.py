"""Tests of the inference worker: latest-wins queue, error isolation, clean stop."""

from __future__ import annotations

import threading

import pytest

from vggt_uncertainty_ros.online.estimator import NonFiniteOutputError
from vggt_uncertainty_ros.online.worker import InferenceWorker, LatestWinsQueue, classify_error


class OutOfMemoryError(RuntimeError):
    """Stands in for ``torch.cuda.OutOfMemoryError`` (same class name)."""


def test_queue_evicts_oldest_when_full():
    q: LatestWinsQueue[int] = LatestWinsQueue(2)
    assert q.put(1) is None and q.put(2) is None
    assert q.put(3) == 1
    assert [q.get(0), q.get(0), q.get(0.01)] == [2, 3, None]
    with pytest.raises(ValueError, match="maxsize"):
        LatestWinsQueue(0)


class Collector(list):
    """A list the worker thread appends to; :meth:`wait_len` blocks until it holds n items.

    The timeout only turns a hang (a bug) into a failure; no test outcome depends on timing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()

    def append(self, item) -> None:
        with self._cond:
            super().append(item)
            self._cond.notify_all()

    def wait_len(self, n: int, timeout_s: float = 60.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self) >= n, timeout_s), f"only {len(self)} of {n} items arrived"


def test_busy_worker_keeps_newest_jobs_and_never_blocks_submit():
    running, release = threading.Event(), threading.Event()
    results = Collector()

    def process(job: int) -> int:
        running.set()
        release.wait()
        return job * 10

    worker: InferenceWorker[int, int] = InferenceWorker(process, lambda j, r: results.append(r), maxsize=2)
    worker.start()
    worker.submit(0)
    assert running.wait(60)
    accepted = [worker.submit(j) for j in range(1, 6)]
    # the model is still blocked on `release`: every submit returned without waiting for it
    assert worker.stats().processed == 0 and not release.is_set()
    assert accepted == [True, True, False, False, False]
    assert worker.stats().queue_depth == 2
    release.set()
    results.wait_len(3)
    assert results == [0, 40, 50], "the newest jobs survive"
    stats = worker.stats()
    assert (stats.submitted, stats.processed, stats.dropped, stats.failed) == (6, 3, 3, 0)
    assert stats.last_latency_s > 0 and stats.jobs_per_s > 0
    assert worker.stop(2.0)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "cuda_oom"),
        (NonFiniteOutputError("non-finite values in log_var"), "non_finite"),
        (KeyError("boom"), "KeyError"),
    ],
)
def test_model_errors_skip_the_window_and_are_counted(exc, reason):
    assert classify_error(exc) == reason
    results = Collector()
    errors: list[BaseException] = []

    def process(job: int) -> int:
        if job == 1:
            raise exc
        return job

    worker: InferenceWorker[int, int] = InferenceWorker(
        process, lambda j, r: results.append(r), maxsize=4, on_error=lambda j, e: errors.append(e)
    )
    worker.start()
    for job in (0, 1, 2):
        worker.submit(job)
    results.wait_len(2)
    assert results == [0, 2] and errors == [exc]
    stats = worker.stats()
    assert stats.failed == 1 and stats.failures == {reason: 1}
    assert worker.stop(2.0)


def test_result_callback_errors_do_not_kill_the_worker():
    seen = Collector()

    def on_result(job: int, result: int) -> None:
        seen.append(result)
        if job == 0:
            raise RuntimeError("publisher gone")

    worker: InferenceWorker[int, int] = InferenceWorker(lambda j: j, on_result, maxsize=4)
    worker.start()
    worker.submit(0)
    worker.submit(1)
    seen.wait_len(2)
    assert worker.stop(2.0)


def test_stop_is_prompt_when_idle_and_discards_pending():
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def process(job: int) -> int:
        started.set()
        release.wait()
        return job

    worker: InferenceWorker[int, int] = InferenceWorker(process, lambda j, r: done.append(r), maxsize=3)
    worker.start()
    for j in range(3):
        worker.submit(j)
    assert started.wait(60)
    release.set()
    assert worker.stop(60.0), "the thread ends once the running job returns"
    stats = worker.stats()
    assert set(done) <= {0} and stats.processed <= 1, "the pending jobs 1 and 2 never run"
    assert stats.queue_depth == 0
