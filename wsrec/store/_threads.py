"""The thread pool a generator reads ahead with.

A generator left half-way (an error in its consumer, a closed pipe) is closed when the
garbage collector gets to it, and that can be inside ``threading``'s own bookkeeping of
another thread starting, under a lock that joining a thread needs too: a pool that
waits for its threads on the way out then hangs the process for good. So the pool is
shut down without waiting: what a thread is in the middle of ends on its own, and
nothing waits for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

__all__ = ["read_ahead_pool"]


@contextmanager
def read_ahead_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A ``ThreadPoolExecutor`` of ``workers`` threads named ``name-N``; on the way out,
    the work not started is cancelled and none is waited for."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
