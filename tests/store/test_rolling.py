import json
import time

import pytest

import wsrec
from wsrec.errors import StorageError, UsageError
from wsrec.store import rolling
from wsrec.store.layout import parse_rel
from wsrec.store.repair import repair
from wsrec.store.rolling import PERIODS, RollingWriter, Rotation, parse_rotation
from wsrec.store.verify import verify
from wsrec.timefmt import format_ns, parse_time

T0 = parse_time("2026-11-22T23:59:58Z")
SEC = 1_000_000_000


def _manifest(folder) -> dict:
    return json.loads((folder / "session.json").read_text())


def _frames(folder):
    return list(wsrec.open_session(folder).frames())


def test_rotation_boundaries():
    day = Rotation("1d")
    assert day.next_after(T0) == parse_time("2026-11-23T00:00:00Z")
    assert day.next_after(parse_time("2026-11-23T00:00:00Z")) == \
        parse_time("2026-11-24T00:00:00Z")
    assert day.floor(T0) == parse_time("2026-11-22T00:00:00Z")
    assert Rotation("1h").next_after(T0) == parse_time("2026-11-23T00:00:00Z")
    assert Rotation("1h").label == "1h" and Rotation(None).label == "never"
    assert Rotation("never").next_after(T0) is None
    assert Rotation(PERIODS["1d"]).label == "1d"
    short = Rotation(2 * SEC, origin_ns=T0 + 1)
    assert short.next_after(T0 + 1) == T0 + 1 + 2 * SEC and short.label == "2000000000ns"
    for bad in ("2d", "", 0, -5, 1.5, "1h "):
        if bad == "1h ":
            assert parse_rotation(bad) == PERIODS["1h"]
            continue
        with pytest.raises(UsageError, match="rotation"):
            Rotation(bad)


def _record_across(data, *, rows=60, step=100_000_000):
    """Rows every ``step`` ns from T0 over 2 s boundaries; conn 0 stays open throughout,
    conn 1 (stream 'b') is lost before the first boundary and back after it."""
    clock = {"now": T0}
    w = RollingWriter("alpaca", data, rotation=Rotation(2 * SEC, origin_ns=T0 + SEC),
                      now_ns=lambda: clock["now"], part_bytes=512)
    sent = []
    mono = 1_000
    w.event("open", conn=0, stream="a", ts_ns=T0, mono_ns=mono, url="wss://a.test/")
    w.event("open", conn=1, stream="b", ts_ns=T0, mono_ns=mono, url="wss://b.test/")
    for i in range(rows):
        ts = T0 + i * step
        mono += step
        if i == 5:
            w.event("close", conn=1, stream="b", ts_ns=ts, mono_ns=mono, code=1006)
        if i == 15:   # after the first boundary (T0 + 1 s)
            w.event("open", conn=2, stream="b", ts_ns=ts, mono_ns=mono, url="wss://b.test/")
        payload = b"frame %d" % i
        sent.append(payload)
        w.append(payload, conn=0, stream="a", kind="text", ts_ns=ts, mono_ns=mono)
    w.close()
    return w, sent


def test_every_frame_in_exactly_one_session_and_seq_gapless(tmp_path):
    started = time.monotonic()
    w, sent = _record_across(tmp_path)
    folders = [s.folder for s in w.sessions]
    assert len(folders) == 4    # T0+1 s, +3 s, +5 s fall inside 6 s of rows
    got = []
    for folder in folders:
        frames = _frames(folder)
        assert [f.seq for f in frames] == list(range(len(frames)))
        got += [f.payload for f in frames if f.dir == "in"]
        assert verify(wsrec.open_session(folder)) == []
        assert _manifest(folder)["status"] == "complete"
        assert parse_rel(folder.relative_to(tmp_path)).venue == "alpaca"
    assert got == sent
    # each row sits in the session its time belongs to
    for folder in folders[1:]:
        start = parse_time(_manifest(folder)["started"])
        assert all(f.ts >= start for f in _frames(folder))
    assert time.monotonic() - started < 2


def test_rotate_rows_chain_and_carry_the_connections(tmp_path):
    w, _ = _record_across(tmp_path)
    a, b = (s.folder for s in w.sessions[:2])
    ma, mb = _manifest(a), _manifest(b)
    assert "continues" not in ma and ma["continued_by"] == mb["session"]
    assert mb["continues"] == ma["session"] and mb["continued_by"] == \
        _manifest(w.sessions[2].folder)["session"]
    assert mb["settings"]["rotate"] == "2000000000ns"
    # the last row of A and the first of B
    last, first = _frames(a)[-1], _frames(b)[0]
    assert (last.kind, json.loads(last.payload)) == ("rotate", {"to": mb["session"]})
    carried = json.loads(first.payload)
    assert first.kind == "rotate" and carried["from"] == ma["session"]
    assert carried["open"] == [{"conn": 0, "stream": "a", "opened": T0,
                                "url": "wss://a.test/"}]
    assert [d["stream"] for d in carried["down"]] == ["b"]
    assert parse_time(ma["ended"]) < parse_time(mb["started"])
    # conn 0 is open across the boundary: in both, no 'open' row invented in B
    opened_a = {c["conn"]: c for c in ma["connections"]}
    opened_b = {c["conn"]: c for c in mb["connections"]}
    assert opened_a[0]["closed"] is None and opened_b[0]["closed"] is None
    assert opened_b[0]["opened"] == format_ns(T0) == opened_a[0]["opened"]
    assert not [f for f in _frames(b) if f.kind == "open" and f.conn == 0]
    assert opened_a[1]["closed"] is not None and 1 not in opened_b
    # stream b went down in A and came back in B: the gap is in B, from A's loss
    assert mb["gaps"] == [{"stream": "b", "after_conn": 1, "conn": 2,
                           "start": format_ns(T0 + 5 * 100_000_000),
                           "end": format_ns(T0 + 15 * 100_000_000),
                           "mono_start": 1_000 + 6 * 100_000_000,
                           "mono_end": 1_000 + 16 * 100_000_000,
                           "duration_ns": 10 * 100_000_000}]
    # conn 0 still open in the last session, which ended at close
    assert [c["conn"] for c in _manifest(w.sessions[-1].folder)["connections"]] == [0, 2]


def test_repair_rebuilds_the_same_connections_from_the_rows(tmp_path):
    w, _ = _record_across(tmp_path)
    b = w.sessions[1].folder
    before = _manifest(b)
    (b / "session.json").unlink()
    repair(b)
    after = _manifest(b)
    assert after["connections"] == before["connections"]
    assert after["gaps"] == before["gaps"]
    assert verify(wsrec.open_session(b)) == []


def test_a_quiet_stream_rolls_on_the_timer(tmp_path):
    clock = {"now": T0}
    w = RollingWriter("v", tmp_path, rotation=Rotation(SEC, origin_ns=0),
                      now_ns=lambda: clock["now"])
    w.event("open", conn=0, stream="s", ts_ns=T0, mono_ns=1, url="wss://x.test/")
    assert w.next_roll == T0 + SEC
    assert not w.roll_if_due(T0 + SEC - 1)
    assert w.roll_if_due(T0 + SEC)
    assert len(w.sessions) == 2 and w.next_roll == T0 + 2 * SEC
    w.append(b"late", ts_ns=T0 + SEC + 5, mono_ns=10)
    w.close()
    quiet = _frames(w.sessions[1].folder)
    assert [f.kind for f in quiet] == ["rotate", "binary"]
    assert _manifest(w.sessions[1].folder)["connections"][0]["conn"] == 0


def test_a_clock_stepping_back_never_rolls_back(tmp_path):
    w = RollingWriter("v", tmp_path, rotation=Rotation(SEC, origin_ns=0),
                      now_ns=lambda: T0)
    w.append(b"1", ts_ns=T0 + SEC, mono_ns=1)          # rolls
    w.append(b"2", ts_ns=T0 - 5 * SEC, mono_ns=2)      # back in time: stays in B
    w.close()
    assert len(w.sessions) == 2
    assert [f.payload for f in _frames(w.sessions[1].folder) if f.dir == "in"] == [b"1", b"2"]


def test_a_failed_roll_keeps_writing_and_retries(tmp_path, monkeypatch):
    real = rolling.SessionWriter
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise StorageError("cannot create x: No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(rolling, "SessionWriter", flaky)
    w = RollingWriter("v", tmp_path, rotation=Rotation(SEC, origin_ns=0), now_ns=lambda: T0)
    w.append(b"1", ts_ns=T0 + SEC, mono_ns=1)     # the roll fails: the row stays in A
    assert len(w.sessions) == 1 and "No space" in w.roll_error
    w.append(b"2", ts_ns=T0 + SEC + 1, mono_ns=2)  # no retry until the timer
    assert not w.roll_if_due(T0 + SEC + 2)        # the retry fails again
    assert w.roll_if_due(T0 + SEC + 3)
    w.append(b"3", ts_ns=T0 + SEC + 4, mono_ns=3)
    w.close()
    assert [[f.payload for f in _frames(s.folder) if f.dir == "in"] for s in w.sessions] == \
        [[b"1", b"2"], [b"3"]]


def test_never_rotating_is_one_session(tmp_path):
    w = RollingWriter("v", tmp_path, rotation=Rotation("never"), now_ns=lambda: T0)
    for i in range(5):
        w.append(b"x", ts_ns=T0 + i * PERIODS["1d"], mono_ns=i)
    w.close()
    assert len(w.sessions) == 1 and w.next_roll is None


def test_the_recorder_rolls_without_losing_a_frame(tmp_path):
    """The recorder end to end from a simulator, rotating every 0.4 s: several sessions,
    each sound, and together every frame the simulator sent, once, on one connection."""
    from conftest import record_from_sim
    from wsrec.record.recorder import RecordOptions
    from wsrec.sim import SimOptions

    result, sim, _ = record_from_sim(
        "hyperliquid", tmp_path, sim=SimOptions(rate=300), channels=["trades"],
        symbols=["BTC"], options=RecordOptions(duration=1.5, rotate=400_000_000))
    assert result.status == "complete"
    assert len(result.sessions) >= 3 and result.path == result.sessions[-1]
    got, opens = [], []
    for i, folder in enumerate(result.sessions):
        session = wsrec.open_session(folder)
        assert verify(session) == []
        frames = list(session.frames())
        assert [f.seq for f in frames] == list(range(len(frames)))
        got += [f.payload for f in frames if f.dir == "in"]
        opens += [f for f in frames if f.kind == "open"]
        m = session.manifest
        assert m["settings"]["rotate"] == "400000000ns"
        assert (m.get("continues") is None) == (i == 0)
        assert [c["conn"] for c in m["connections"]] == [0]   # open across every roll
    assert len(opens) == 1 and len(sim.sent) == 1             # no reconnect
    sent = sim.sent[min(sim.sent)]
    assert got == sent[:len(got)] and len(got) >= len(sent) - 5
