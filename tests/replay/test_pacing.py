import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wsrec.replay._pacing import Lateness, Pacer, prefetch


def test_pacer_waits_until_due():
    p = Pacer()
    p.wait(20_000_000)
    assert 0 <= p.lateness(20_000_000) < 10_000_000


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
