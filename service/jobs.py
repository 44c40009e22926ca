"""A bounded worker pool with a bounded wait queue, shared by the HTTP API and the UI.

``pipeline.run`` is CPU-bound, so it runs on ``workers`` threads, never on the event loop. At
most ``workers + queue_size`` jobs are admitted at once; one more is refused with
:class:`QueueFullError` (HTTP 503 + Retry-After) instead of piling up unbounded.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

from pipeline.errors import BusyError

T = TypeVar("T")

log = logging.getLogger("toonforge.jobs")

MAX_RETRY_AFTER_S = 120
# Workers run at a lower CPU priority than the event loop thread, so that /health and
# request parsing are scheduled promptly while every core is busy with the pipeline.
WORKER_NICE = 10


class QueueFullError(BusyError):
    """Every worker is busy and the wait queue is full."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class JobPool:
    """Runs callables on ``workers`` threads with at most ``queue_size`` more waiting."""

    def __init__(self, workers: int, queue_size: int, nice: int = WORKER_NICE) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.workers = workers
        self.queue_size = queue_size
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="toonforge-job",
            initializer=_lower_thread_priority,
            initargs=(nice,),
        )
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._avg_job_s = 1.0  # running mean of job durations, for Retry-After

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_size

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        """Admitted jobs that have not started yet: the queue depth."""
        with self._lock:
            return self._admitted - self._running

    def check_capacity(self) -> None:
        """Raise :class:`QueueFullError` now if a submit would be refused (cheap pre-check)."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise self._full_locked()

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> "Future[T]":
        """Queue ``fn(*args, **kwargs)``; raises :class:`QueueFullError` when full.

        The caller's context variables travel with the job (Gradio's progress bar needs them).
        """
        with self._lock:
            if self._admitted >= self.capacity:
                raise self._full_locked()
            self._admitted += 1
        context = contextvars.copy_context()
        try:
            future = self._executor.submit(context.run, self._run, fn, args, kwargs)
        except RuntimeError:  # executor shut down: the process is stopping
            with self._lock:
                self._admitted -= 1
            raise QueueFullError("The server is shutting down. Try again shortly.", 5) from None
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Await ``fn`` on the pool; cancelling the await cancels the job if it has not started."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn`` on the pool and block until it is done (for synchronous callers)."""
        return self.submit(fn, *args, **kwargs).result()

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def _run(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        with self._lock:
            self._running += 1
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                self._avg_job_s += 0.2 * (elapsed - self._avg_job_s)

    def _release(self, _future: Future) -> None:
        # Runs when the job finishes or is cancelled before starting.
        with self._lock:
            self._admitted -= 1

    def _full_locked(self) -> QueueFullError:
        return QueueFullError(
            f"The server is busy ({self._admitted} photos in progress). Try again in a few seconds.",
            self._retry_after_locked(),
        )

    def _retry_after_locked(self) -> int:
        """Roughly when a slot frees up: the queue drains ``workers`` jobs per mean job time."""
        seconds = math.ceil(self._avg_job_s * max(1, self._admitted - self._running + 1) / self.workers)
        return max(1, min(MAX_RETRY_AFTER_S, seconds))


def _lower_thread_priority(nice: int) -> None:
    """Renice the calling thread only. Linux schedules threads by their own id; elsewhere
    the same call would renice the whole process, so it is skipped."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError as exc:  # e.g. a seccomp sandbox; correctness does not depend on it
        log.warning("could not lower the worker thread's priority: %s", exc)
