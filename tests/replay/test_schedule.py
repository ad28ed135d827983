import pytest

import wsrec
from wsrec.store.filters import Filters
from wsrec.replay._schedule import Schedule, down_intervals

MS = 1_000_000


def make(data, venue, rows, events=()):
    """rows: (ts_ms, mono_ms, payload); events: (kind, conn, ts_ms, mono_ms)."""
    with wsrec.SessionWriter(venue, data=data) as w:
        merged = sorted([(r[1], 1, r) for r in rows] + [(e[3], 0, e) for e in events])
        for _, is_row, item in merged:
            if is_row:
                ts, mono, payload = item
                w.append(payload, kind="text", ts_ns=ts * MS, mono_ns=mono * MS)
            else:
                kind, conn, ts, mono = item
                w.event(kind, conn=conn, ts_ns=ts * MS, mono_ns=mono * MS)
    return wsrec.open_session(w.folder)


def dues(schedule):
    out = []
    for batch, due in schedule:
        out.extend(zip(batch.column("payload").to_pylist(), due.to_pylist()))
    return out


def test_anchored_to_the_first_frame_and_divided_by_speed(data):
    s = make(data, "v", [(1000, 50, b"a"), (1001, 51, b"b"), (1500, 550, b"c")])
    assert dues(Schedule([s])) == [(b"a", 0), (b"b", MS), (b"c", 500 * MS)]
    assert dues(Schedule([s], speed=10)) == [(b"a", 0), (b"b", MS // 10), (b"c", 50 * MS)]
    late = Schedule([s], Filters.make(start=1001 * MS))
    assert dues(late) == [(b"b", 0), (b"c", 499 * MS)]
    with pytest.raises(ValueError):
        Schedule([s], speed=0)


def test_merges_sessions_by_ts_each_on_its_own_monotonic_clock(data):
    a = make(data, "a", [(1000, 7000, b"a1"), (1100, 7100, b"a2")])
    b = make(data, "b", [(1050, 3, b"b1"), (1060, 13, b"b2"), (1200, 153, b"b3")])
    got = dues(Schedule([a, b], batch_size=1))
    assert got == [(b"a1", 0), (b"b1", 50 * MS), (b"b2", 60 * MS), (b"a2", 100 * MS),
                   (b"b3", 200 * MS)]


def test_skip_gaps_collapses_time_when_every_connection_was_down(data):
    rows = [(1000, 0, b"x"), (1100, 100, b"y"), (5100, 4100, b"z")]
    events = [("open", 0, 999, 0), ("close", 0, 1200, 200), ("open", 0, 5000, 4000)]
    s = make(data, "v", rows, events)
    assert down_intervals(s.manifest) == [(200 * MS, 4000 * MS)]
    kept = dict(dues(Schedule([s], Filters.make(direction="in"))))
    skipped = dict(dues(Schedule([s], Filters.make(direction="in"), skip_gaps=True)))
    assert kept[b"z"] == 4100 * MS and skipped[b"z"] == 300 * MS
    assert skipped[b"y"] == kept[b"y"] == 100 * MS


def test_down_intervals_intersects_streams():
    manifest = {"connections": [{"conn": 0, "stream": "a"}, {"conn": 1, "stream": "b"},
                                {"conn": 2, "stream": "a"}],
                "gaps": [{"stream": "a", "mono_start": 10, "mono_end": 50},
                         {"stream": "b", "mono_start": 30, "mono_end": 80}]}
    assert down_intervals(manifest) == [(30, 50)]
    manifest["gaps"].pop()
    assert down_intervals(manifest) == []  # stream b stayed up
