"""The read-ahead pool (wsrec.store._threads): leaving it never waits for its threads, so a
generator the garbage collector closes mid-way (inside threading's own locks) can't hang."""

import threading

import pytest

from wsrec.replay.stdout import rendered
from wsrec.store._threads import read_ahead_pool

pytestmark = pytest.mark.timeout(30)


def _closes_at_once(generator) -> bool:
    """Whether closing ``generator`` returns while its pool still has a thread busy."""
    done = threading.Event()

    def close():
        generator.close()
        done.set()
    threading.Thread(target=close, daemon=True).start()
    return done.wait(5)


def test_leaving_the_pool_does_not_wait_for_a_busy_thread():
    release = threading.Event()

    def reader():
        with read_ahead_pool(2, "test-read") as pool:
            pool.submit(release.wait)
            yield 1
            yield 2
    g = reader()
    assert next(g) == 1
    try:
        assert _closes_at_once(g)
    finally:
        release.set()


def test_an_abandoned_render_does_not_wait_for_its_threads():
    release = threading.Event()

    def render(item):
        if item:
            release.wait()
        return item
    g = rendered(iter([0, 1, 1, 1]), render, ahead=2)   # item 1 busy when 0 is given
    assert next(g) == 0
    try:
        assert _closes_at_once(g)
    finally:
        release.set()
