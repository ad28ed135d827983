
import pytest

from wsrec.pacing import Lateness, Pacer, prefetch


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


def test_prefetch_keeps_order_and_raises():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        list(prefetch(broken()))
