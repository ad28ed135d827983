"""Waiting until a frame is due, precisely, and measuring how late it was.

``time.sleep`` alone wakes up tens to hundreds of microseconds late, and asyncio's timer
rounds to a millisecond; a busy loop alone burns a core while idle. The pacer sleeps until
shortly before the due time and spins only the last stretch, so frames go out within
microseconds of their time and an idle replay costs nothing.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import sys
import threading
import time
from array import array
from concurrent.futures import Executor

__all__ = ["Pacer", "Lateness", "prefetch", "fine_switching"]

_SPIN_NS = 300_000          # spin the last 0.3 ms
_monotonic_ns = time.monotonic_ns


class Pacer:
    """A clock started at ``start_ns`` (monotonic); ``wait(due)`` blocks until start + due.

    With ``stop`` (a ``threading.Event``), a wait ends early when it is set (a server
    shutting down does not wait out a long recorded silence).

    ``clock`` (ns) and ``sleep`` (seconds; a true result ends the wait early, as a set
    ``stop`` does) are injectable, so tests check the waiting with a fake clock; by
    default they are ``time.monotonic_ns`` and ``time.sleep`` (``stop.wait`` with a
    ``stop``)."""

    def __init__(self, start_ns: int | None = None, stop: threading.Event | None = None, *,
                 clock=None, sleep=None, spin_ns: int = _SPIN_NS):
        self.clock = clock or _monotonic_ns
        self.start = self.clock() if start_ns is None else start_ns
        self.stop = stop
        if sleep is None:
            sleep = time.sleep if stop is None else stop.wait
        self.sleep = sleep
        self.spin_ns = spin_ns

    def wait(self, due_ns: int) -> None:
        """Sleep until ``spin_ns`` before the due time, then spin to it (ends early when
        ``stop`` is set while sleeping)."""
        clock = self.clock
        target = self.start + due_ns
        remaining = target - clock()
        if remaining > self.spin_ns and self.sleep((remaining - self.spin_ns) / 1e9):
            return
        while clock() < target:
            pass

    def lateness(self, due_ns: int) -> int:
        """How late, in ns, an action taken now is for a frame due at ``due_ns``."""
        return self.clock() - self.start - due_ns


class Lateness:
    """Lateness samples (ns) and their percentiles; memory stays bounded on long replays."""

    MAX = 2_000_000

    def __init__(self):
        self.samples = array("q")
        self.count = 0
        self.last = None          # the latest frame's lateness: the drift at the end
        self._stride = 1

    def add(self, ns: int) -> None:
        self.last = ns
        self.count += 1
        if self.count % self._stride:
            return
        self.samples.append(ns)
        if len(self.samples) >= self.MAX:  # keep every other sample from here on
            self.samples = self.samples[::2]
            self._stride *= 2

    def summary(self) -> dict:
        if not self.samples:
            return {"frames": self.count, "p50_ms": None, "p99_ms": None, "max_ms": None,
                    "last_ms": None}
        ordered = sorted(self.samples)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731
        return {"frames": self.count, "p50_ms": round(pick(0.50), 3),
                "p99_ms": round(pick(0.99), 3), "max_ms": round(ordered[-1] / 1e6, 3),
                "last_ms": round(self.last / 1e6, 3)}


_END = object()


JOIN_SECONDS = 10.0  # how long a stopped prefetch waits for its worker


def prefetch(iterable, depth: int = 4, *, pool: Executor | None = None,
             stop: threading.Event | None = None):
    """Run ``iterable`` in a thread, ``depth`` items ahead (reading and decoding row groups,
    rendering lines), so the pacing thread only waits and writes.

    ``pool``: instead of a thread of its own, one item ahead in a thread of ``pool``, an
    executor that many readers share (a server's clients: the threads, and the memory
    each thread's allocator keeps, don't grow with the number of clients).

    ``stop``: the event set when the consumer goes (default: one of its own); an
    ``iterable`` that waits (a follower between polls) waits on it, so that it ends at
    once rather than at its next item."""
    if pool is not None:
        yield from _pooled(iter(iterable), pool)
        return
    q: queue.Queue = queue.Queue(depth)
    stop = stop if stop is not None else threading.Event()

    def give(item) -> bool:
        """Queue ``item`` unless the consumer has gone: False then."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in iterable:
                if not give(item):
                    return
            give(_END)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            give(exc)

    thread = threading.Thread(target=work, name="wsrec-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # let the worker finish the item it is decoding: a process that exits while a
        # thread is inside Arrow can abort ("terminate called without an active exception")
        thread.join(JOIN_SECONDS)


def _pooled(it, pool: Executor):
    future = pool.submit(next, it, _END)
    try:
        while True:
            item = future.result()
            if item is _END:
                return
            future = pool.submit(next, it, _END)
            yield item
    finally:
        if not future.cancel():  # running: let it finish (see the join above)
            with contextlib.suppress(BaseException):
                future.result(JOIN_SECONDS)


@contextlib.contextmanager
def fine_switching(seconds: float = 0.0002):
    """Real-time settings while pacing: threads take the GIL from each other every
    ``seconds`` (the default 5 ms is too coarse for a pacer sharing the interpreter with a
    prefetch thread), and the cyclic garbage collector is off (a full collection over the
    frames in flight stops every thread for tens of milliseconds; replay's objects hold no
    cycles, reference counting frees them)."""
    old = sys.getswitchinterval()
    collecting = gc.isenabled()
    sys.setswitchinterval(seconds)
    gc.disable()
    try:
        yield
    finally:
        sys.setswitchinterval(old)
        if collecting:
            gc.enable()
