"""Inference worker: one thread fed by a bounded, latest-wins queue.

The node's callbacks only :meth:`InferenceWorker.submit` jobs; they never wait for the model.
When the queue is full the *oldest* pending job is dropped (and counted) so the newest data
is always the next to run and memory stays bounded. A job whose processing raises (CUDA
out of memory, non-finite output, anything else) is skipped and counted by reason; the
worker keeps running. :meth:`InferenceWorker.stop` ends the thread promptly.

ROS-free: the node wires ``process`` (model + tracker) and ``on_result`` (publishing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_log = logging.getLogger(__name__)

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")


class LatestWinsQueue(Generic[JobT]):
    """A bounded FIFO whose :meth:`put` evicts the oldest item when full.

    Args:
        maxsize: capacity (≥ 1).

    Raises:
        ValueError: if ``maxsize`` < 1.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"queue maxsize must be >= 1, got {maxsize}")
        self._items: deque[JobT] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: JobT) -> JobT | None:
        """Append ``item``; return the evicted oldest item if the queue was full, else None."""
        with self._cond:
            evicted = self._items.popleft() if len(self._items) >= self._maxsize else None
            self._items.append(item)
            self._cond.notify()
            return evicted

    def get(self, timeout_s: float | None = None) -> JobT | None:
        """Oldest item, waiting up to ``timeout_s``; None on timeout or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout_s):
                return None
            if self._closed:
                return None
            return self._items.popleft()

    def close(self) -> None:
        """Wake all waiters; later :meth:`get` calls return None."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


@dataclass
class WorkerStats:
    """Snapshot of the worker's counters.

    Attributes:
        submitted: jobs handed to :meth:`InferenceWorker.submit`.
        processed: jobs whose processing finished without error.
        dropped: jobs evicted from the full queue before they ran (latest-wins policy).
        failed: jobs whose processing raised; by reason in ``failures``.
        failures: reason (``cuda_oom``, ``non_finite``, or the exception's class name) -> count.
        queue_depth: jobs waiting now.
        last_latency_s: wall time of the last successful job, seconds.
        mean_latency_s: mean wall time of successful jobs, seconds.
        jobs_per_s: successful jobs per second over the last ``rate_window_s``.
    """

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    last_latency_s: float = float("nan")
    mean_latency_s: float = float("nan")
    jobs_per_s: float = 0.0


def classify_error(exc: BaseException) -> str:
    """Short reason for a failed job: ``cuda_oom``, ``non_finite`` or the exception class name."""
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return "cuda_oom"
    if name == "NonFiniteOutputError":
        return "non_finite"
    return name


class InferenceWorker(Generic[JobT, ResultT]):
    """Runs ``process(job)`` on a background thread, then ``on_result(job, result)``.

    Args:
        process: the slow part (model inference); may raise, the job is then skipped.
        on_result: called on the worker thread with each successful result.
        maxsize: queue capacity; older pending jobs are dropped beyond it.
        on_error: optional hook called with ``(job, exc)`` after a failure (e.g. to free GPU
            memory after an out-of-memory error).
        rate_window_s: time span over which :attr:`WorkerStats.jobs_per_s` is measured.
        name: thread name.
    """

    def __init__(
        self,
        process: Callable[[JobT], ResultT],
        on_result: Callable[[JobT, ResultT], None],
        *,
        maxsize: int = 1,
        on_error: Callable[[JobT, BaseException], None] | None = None,
        rate_window_s: float = 10.0,
        name: str = "vggt-inference",
    ) -> None:
        self._process = process
        self._on_result = on_result
        self._on_error = on_error
        self._queue: LatestWinsQueue[JobT] = LatestWinsQueue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self._stats = WorkerStats()
        self._failures: Counter[str] = Counter()
        self._latency_sum_s = 0.0
        self._done_times: deque[float] = deque()
        self._rate_window_s = rate_window_s

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def submit(self, job: JobT) -> bool:
        """Queue ``job`` without blocking.

        Returns:
            True if no pending job had to be dropped to make room, False if one was.
        """
        evicted = self._queue.put(job)
        with self._lock:
            self._stats.submitted += 1
            if evicted is not None:
                self._stats.dropped += 1
        return evicted is None

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop taking jobs, discard pending ones and join the thread.

        A job already running finishes first (its result is not delivered).

        Returns:
            True if the thread ended within ``timeout_s``.
        """
        self._stop.set()
        self._queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        if alive:
            _log.warning("inference worker still busy after %.1f s; leaving it (daemon thread)", timeout_s)
        return not alive

    def stats(self) -> WorkerStats:
        """A consistent snapshot of the counters."""
        now = time.monotonic()
        with self._lock:
            while self._done_times and now - self._done_times[0] > self._rate_window_s:
                self._done_times.popleft()
            s = self._stats
            return WorkerStats(
                submitted=s.submitted,
                processed=s.processed,
                dropped=s.dropped,
                failed=s.failed,
                failures=dict(self._failures),
                queue_depth=len(self._queue),
                last_latency_s=s.last_latency_s,
                mean_latency_s=self._latency_sum_s / s.processed if s.processed else float("nan"),
                jobs_per_s=len(self._done_times) / self._rate_window_s,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._queue.get(timeout_s=0.2)
            if job is None:
                continue
            t0 = time.monotonic()
            try:
                result = self._process(job)
            except Exception as exc:  # noqa: BLE001 - any model error skips the job, never the node
                reason = classify_error(exc)
                with self._lock:
                    self._stats.failed += 1
                    self._failures[reason] += 1
                _log.error("inference failed (%s), window skipped: %s", reason, exc)
                if self._on_error is not None:
                    try:
                        self._on_error(job, exc)
                    except Exception:  # noqa: BLE001 - the error hook must not kill the worker either
                        _log.exception("the inference error hook failed")
                continue
            latency = time.monotonic() - t0
            with self._lock:
                self._stats.processed += 1
                self._stats.last_latency_s = latency
                self._latency_sum_s += latency
                self._done_times.append(time.monotonic())
            if self._stop.is_set():
                break
            try:
                self._on_result(job, result)
            except Exception:  # noqa: BLE001 - a publishing error must not kill the worker
                _log.exception("delivering an inference result failed")
