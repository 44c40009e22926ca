"""One way to time a piece of work: ``with timed(timings, "name"):`` records milliseconds."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Store the wall time of the block, in milliseconds, as ``timings[name]``.

    The time is recorded even when the block raises, so a failing stage still shows its cost.
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = (time.perf_counter() - start) * 1000
