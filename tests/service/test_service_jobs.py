"""service/jobs.py: bounded pool + bounded queue."""

import asyncio
import contextvars
import os
import sys
import threading

import pytest

from service.jobs import JobPool, QueueFullError


@pytest.fixture
def pool():
    p = JobPool(workers=2, queue_size=1)
    yield p
    p.shutdown()


def _blocker(gate: threading.Event, started: threading.Semaphore):
    def job():
        started.release()
        assert gate.wait(10)
        return "done"

    return job


def test_admits_workers_plus_queue_then_refuses(pool):
    gate, started = threading.Event(), threading.Semaphore(0)
    futures = [pool.submit(_blocker(gate, started)) for _ in range(3)]
    for _ in range(2):
        assert started.acquire(timeout=5)
    assert (pool.running, pool.waiting) == (2, 1)
    with pytest.raises(QueueFullError) as info:
        pool.submit(lambda: None)
    assert 1 <= info.value.retry_after_s <= 120
    with pytest.raises(QueueFullError):
        pool.check_capacity()
    gate.set()
    assert [f.result(5) for f in futures] == ["done"] * 3
    assert (pool.running, pool.waiting) == (0, 0)
    pool.check_capacity()
    assert pool.call(lambda: 7) == 7  # capacity is back


def test_cancelling_a_queued_job_frees_its_slot(pool):
    gate, started = threading.Event(), threading.Semaphore(0)
    running = [pool.submit(_blocker(gate, started)) for _ in range(2)]
    queued = pool.submit(lambda: "never")
    assert queued.cancel()
    assert pool.waiting == 0
    late = pool.submit(lambda: "ok")  # would be refused if the cancelled job still counted
    gate.set()
    assert late.result(5) == "ok"
    for f in running:
        f.result(5)


def test_exceptions_reach_the_caller_and_free_the_slot(pool):
    def boom():
        raise ValueError("bad")

    for _ in range(5):
        with pytest.raises(ValueError):
            pool.call(boom)
    assert pool.waiting == 0 and pool.running == 0


def test_context_variables_follow_the_job(pool):
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    assert pool.call(var.get) == "caller"


def test_async_run_does_not_block_the_loop(pool):
    async def main():
        gate = threading.Event()
        job = asyncio.ensure_future(pool.run(gate.wait, 5))
        await asyncio.sleep(0.05)  # the loop keeps turning while the job blocks a worker
        assert not job.done()
        gate.set()
        return await job

    assert asyncio.run(main()) is True


def test_rejects_bad_sizes():
    with pytest.raises(ValueError):
        JobPool(0, 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux-only")
def test_workers_run_at_lower_priority_than_the_caller():
    pool = JobPool(workers=1, queue_size=0, nice=5)
    try:
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        theirs = pool.call(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert theirs == min(19, mine + 5)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # caller untouched
    finally:
        pool.shutdown()
