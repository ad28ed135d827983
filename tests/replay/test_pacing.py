import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wsrec.replay._pacing import Lateness, Pacer, prefetch


class FakeClock:
    """A monotonic clock (ns) that moves only when slept on, and by ``tick`` ns on each
    read (a spinning loop moves it, as real time would)."""

    def __init__(self, now=1_000_000_000, tick=1_000):
        self.now, self.tick = now, tick
        self.sleeps = []   # seconds asked for
        self.stop_after = None   # a sleep this many sleeps from now reports a stop

    def __call__(self):
        self.now += self.tick
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += round(seconds * 1e9)
        return self.stop_after is not None and len(self.sleeps) >= self.stop_after


def test_pacer_sleeps_to_just_before_due_then_spins_to_it():
    clock = FakeClock()
    p = Pacer(clock.now, clock=clock, sleep=clock.sleep, spin_ns=300_000)
    p.wait(20_000_000)
    # one sleep, to 0.3 ms before the due time (from the reading taken at the start) ...
    assert clock.sleeps == [pytest.approx((20_000_000 - 1_000 - 300_000) / 1e9)]
    # ... then spinning: never early, and late by at most one clock reading
    late = p.lateness(20_000_000)
    assert 0 < late <= 2_000


def test_pacer_only_spins_when_the_due_time_is_near_and_never_waits_when_late():
    clock = FakeClock()
    p = Pacer(clock.now, clock=clock, sleep=clock.sleep, spin_ns=300_000)
    p.wait(200_000)                   # 0.2 ms away: spin, no sleep
    assert clock.sleeps == [] and 0 < p.lateness(200_000) <= 2_000
    before = clock.now
    p.wait(100_000)                   # already past: returns at once
    assert clock.sleeps == [] and clock.now - before <= 2_000   # two readings
    assert p.lateness(100_000) > 0


def test_pacer_clock_starts_now_by_default():
    clock = FakeClock(now=5_000)
    p = Pacer(clock=clock, sleep=clock.sleep)
    assert p.start == 6_000 and p.lateness(0) == 1_000


def test_a_stopped_wait_returns_early():
    clock = FakeClock()
    clock.stop_after = 1
    p = Pacer(clock.now, clock=clock, sleep=clock.sleep)
    p.wait(10_000_000_000)            # 10 s away; the sleep reports a stop
    assert len(clock.sleeps) == 1 and p.lateness(10_000_000_000) < 0   # not spun to it


def test_stop_event_ends_a_real_wait_early():
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    p = Pacer(stop=stop)
    t0 = time.monotonic()
    p.wait(60_000_000_000)            # a minute of recorded silence
    assert time.monotonic() - t0 < 30


def test_pacer_waits_until_due():
    """End to end on the real clock: never early; the bound on lateness is generous
    (a loaded machine may wake the thread late; precise figures are benched)."""
    p = Pacer()
    p.wait(20_000_000)
    assert 0 <= p.lateness(20_000_000) < 2_000_000_000


def test_lateness_summary_and_bounded_memory():
    lat = Lateness()
    lat.MAX = 1000
    for i in range(5000):
        lat.add(i * 1000)
    s = lat.summary()
    assert s["frames"] == 5000 and len(lat.samples) < 1000
    assert s["max_ms"] <= 5.0 and s["p50_ms"] < s["p99_ms"]
    assert Lateness().summary()["p50_ms"] is None


@pytest.mark.parametrize("pooled", [False, True])
def test_prefetch_keeps_order_and_raises(pooled):
    with ThreadPoolExecutor(2) as pool:
        kw = {"pool": pool} if pooled else {"depth": 3}
        assert list(prefetch(iter(range(100)), **kw)) == list(range(100))

        def broken():
            yield 1
            raise ValueError("boom")
        with pytest.raises(ValueError, match="boom"):
            list(prefetch(broken(), **kw))


def test_readers_sharing_a_pool_each_get_their_own_items_in_order():
    with ThreadPoolExecutor(2) as pool:
        readers = [prefetch(iter(range(i, i + 50)), pool=pool) for i in range(0, 1000, 100)]
        got = [[] for _ in readers]
        for _ in range(50):  # interleaved, as a server's clients are
            for out, reader in zip(got, readers):
                out.append(next(reader))
        assert got == [list(range(i, i + 50)) for i in range(0, 1000, 100)]


@pytest.mark.parametrize("pooled", [False, True])
def test_closing_a_prefetch_waits_for_the_item_being_made(pooled):
    """A process exiting while a worker is inside Arrow can abort: a stopped reader
    waits for its worker's current item (bounded) before it returns."""
    making, made = threading.Event(), threading.Event()

    def slow():
        yield 0
        making.set()
        time.sleep(0.3)
        made.set()
        yield 1

    with ThreadPoolExecutor(1) as pool:
        reader = prefetch(slow(), depth=1, pool=pool if pooled else None)
        assert next(reader) == 0
        assert making.wait(10)
        reader.close()
        assert made.is_set()
