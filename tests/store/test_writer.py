import json
import os
import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
import pytest

import wsrec
from wsrec.errors import UsageError
from wsrec.timefmt import format_ns
from wsrec.store.manifest import load_manifest

from conftest import write_session


def _frames(folder):
    return list(wsrec.open_session(folder).frames())


def test_round_trip_is_byte_exact(data):
    folder, written = write_session(data, n=800)
    frames = _frames(folder)
    assert [f.seq for f in frames] == list(range(len(written)))
    for frame, (payload, kw) in zip(frames, written):
        assert frame.dir == kw["dir"] and frame.kind == kw["kind"]
        if kw["dir"] != "event":
            assert frame.payload == payload
            assert frame.ts == kw["ts_ns"] and frame.mono_ns == kw["mono_ns"]
            assert frame.conn == kw["conn"]
            assert frame.channels == list(kw["channels"])
            assert frame.symbols == list(kw["symbols"])
            assert frame.symbol == (kw["symbols"][0] if len(kw["symbols"]) == 1 else None)
            assert frame.channel == (kw["channels"][0] if len(kw["channels"]) == 1 else None)
    kinds = {f.kind for f in frames}
    assert {"text", "binary", "open", "close"} <= kinds
    assert any(f.payload == b"" for f in frames)
    assert any(b"\xff\xfe" in f.payload for f in frames)  # invalid UTF-8 kept as is


def test_str_payload_is_utf8_text(data):
    with wsrec.SessionWriter("v", data=data) as w:
        w.append("héllo")
        w.append(b"\x00\x01")
    a, b = _frames(w.folder)
    assert (a.payload, a.kind) == ("héllo".encode(), "text")
    assert (b.payload, b.kind) == (b"\x00\x01", "binary")


def test_sixteen_mib_payload(data):
    big = os.urandom(16 << 20)
    with wsrec.SessionWriter("v", data=data) as w:
        w.append(b"before", kind="text")
        w.append(big)
        w.append(b"after", kind="text")
    frames = _frames(w.folder)
    assert [f.payload for f in frames] == [b"before", big, b"after"]


def test_manifest_contents(data):
    folder, written = write_session(data, n=50, args={"symbols": ["AAPL"],
                                                      "secret": "hunter2", "api_key": "k"})
    m = load_manifest(folder)
    assert m["format_version"] == 2 and m["venue"] == "alpaca"
    assert m["session"] == folder.name and m["status"] == "complete"
    assert m["wsrec_version"] == wsrec.__version__
    assert m["args"] == {"symbols": ["AAPL"], "secret": "***", "api_key": "***"}
    assert m["started"].endswith("Z") and m["ended"].endswith("Z")
    [part] = m["parts"]
    assert part["rows"] == len(written) and part["seq_first"] == 0
    assert part["seq_last"] == len(written) - 1 and len(part["sha256"]) == 64
    assert [c["conn"] for c in m["connections"]] == [0]
    assert m["connections"][0]["code"] == 1000
    assert "hunter2" not in (folder / "session.json").read_text()


def test_session_id_sorts_by_start(data):
    w = wsrec.SessionWriter("v", data=data)
    w.close()
    stamp, _, suffix = w.id.partition("-")
    assert len(stamp) == 16 and stamp.endswith("Z") and len(suffix) == 4
    assert w.id[:8] == time.strftime("%Y%m%d", time.gmtime())


def test_rotation_by_size_keeps_every_row(data):
    folder, written = write_session(data, n=3000, part_bytes=20_000, row_group_rows=500,
                                     flush_every=100)
    m = load_manifest(folder)
    assert len(m["parts"]) > 3
    assert sum(p["rows"] for p in m["parts"]) == len(written)
    for a, b in zip(m["parts"], m["parts"][1:]):
        assert b["seq_first"] == a["seq_last"] + 1
    assert sorted(p.name for p in folder.glob("*.parquet")) == [p["file"] for p in m["parts"]]
    assert not list(folder.glob("*.journal")) and not list(folder.glob("*.tmp"))
    assert [f.payload for f in _frames(folder)][1:-1] == [p for p, _ in written[1:-1]]


def test_row_groups_are_large_not_per_flush(data):
    with wsrec.SessionWriter("v", data=data, flush_interval=0.01, row_group_rows=1000) as w:
        for i in range(5000):
            w.append(b"x" * 20, kind="text")
            if i % 50 == 0:
                w.flush()  # 100 journal flushes ...
    md = pq.ParquetFile(w.folder / "part-000000.parquet").metadata
    assert md.num_rows == 5000
    assert md.num_row_groups <= 6  # ... but row groups of ~1000 rows


def test_rotation_by_time(data):
    with wsrec.SessionWriter("v", data=data, part_seconds=0.05, flush_interval=0.02) as w:
        for _ in range(3):
            w.append(b"x", kind="text")
            w.flush()
            deadline = time.monotonic() + 5
            n = len(w.manifest["parts"])
            while len(w.manifest["parts"]) == n and time.monotonic() < deadline:
                time.sleep(0.01)  # waiting for the flush thread's own timer to rotate
    assert len(load_manifest(w.folder)["parts"]) == 3


def test_flush_interval_makes_rows_durable_without_flush_calls(data):
    w = wsrec.SessionWriter("v", data=data, flush_interval=0.05)
    try:
        w.append(b"hello", kind="text")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            s = wsrec.open_session(w.folder)
            if s.rows() == 1:
                break
            time.sleep(0.01)
        assert s.live and [f.payload for f in s.frames()] == [b"hello"]
    finally:
        w.close()


def test_mono_ns_must_not_go_backwards(data):
    with wsrec.SessionWriter("v", data=data) as w:
        w.append(b"a", mono_ns=100)
        with pytest.raises(ValueError, match="receive order"):
            w.append(b"b", mono_ns=99)
        w.append(b"c", mono_ns=100)
    assert [f.payload for f in _frames(w.folder)] == [b"a", b"c"]


def test_append_after_close_fails(data):
    w = wsrec.SessionWriter("v", data=data)
    w.close()
    with pytest.raises(wsrec.StorageError, match="closed"):
        w.append(b"x")


def test_exception_in_block_marks_failed(data):
    with pytest.raises(RuntimeError):
        with wsrec.SessionWriter("v", data=data) as w:
            w.append(b"x")
            raise RuntimeError("venue said no")
    m = load_manifest(w.folder)
    assert m["status"] == "failed" and "venue said no" in m["error"]
    assert [f.payload for f in _frames(w.folder)] == [b"x"]


@pytest.mark.parametrize("venue", ["", "last", "a/b", "..", "x y"])
def test_bad_venue_names(data, venue):
    with pytest.raises(ValueError, match="invalid venue"):
        wsrec.SessionWriter(venue, data=data)


def test_unwritable_data_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(wsrec.StorageError, match="choose a writable --data"):
        wsrec.SessionWriter("v", data=blocker / "data")
    assert blocker.read_text() == "not a directory"


def test_gaps_from_events(data):
    with wsrec.SessionWriter("v", data=data) as w:
        w.event("open", conn=0, stream="s", url="wss://a", ts_ns=1_000, mono_ns=1_000)
        w.append(b"x", conn=0, stream="s", ts_ns=2_000, mono_ns=2_000)
        w.event("error", conn=0, stream="s", error="reset", ts_ns=3_000, mono_ns=3_000)
        w.event("close", conn=0, stream="s", code=1006, ts_ns=3_100, mono_ns=3_100)
        w.event("reconnect", conn=None, stream="s", attempt=1, ts_ns=3_500, mono_ns=3_500)
        w.event("open", conn=1, stream="s", url="wss://a", ts_ns=9_000, mono_ns=9_000)
    m = load_manifest(w.folder)
    assert [(c["conn"], c["stream"]) for c in m["connections"]] == [(0, "s"), (1, "s")]
    assert m["connections"][0]["error"] == "reset"
    assert m["gaps"] == [{"stream": "s", "after_conn": 0, "conn": 1,
                          "start": "1970-01-01T00:00:00.000003000Z",
                          "end": "1970-01-01T00:00:00.000009000Z",
                          "mono_start": 3_000, "mono_end": 9_000, "duration_ns": 6_000}]
    frames = list(wsrec.open_session(w.folder).frames(direction="all"))
    assert [(f.kind, f.conn, f.stream) for f in frames] == [
        ("open", 0, "s"), ("binary", 0, "s"), ("error", 0, "s"), ("close", 0, "s"),
        ("reconnect", None, "s"), ("open", 1, "s")]


def test_event_rows_given_to_append_count_as_events(data):
    """Importers and repair write event rows through append: the manifest sees them."""
    with wsrec.SessionWriter("v", data=data) as w:
        w.append(b'{"url":"wss://a"}', dir="event", kind="open", conn=3, stream="x",
                 ts_ns=10, mono_ns=10)
        w.append(b'{"code":1000}', dir="event", kind="close", conn=3, stream="x",
                 ts_ns=20, mono_ns=20)
    m = load_manifest(w.folder)
    assert m["connections"] == [{"conn": 3, "stream": "x", "opened": format_ns(10),
                                 "closed": format_ns(20), "url": "wss://a", "code": 1000}]


def test_append_refuses_an_unknown_direction(data):
    with wsrec.SessionWriter("v", data=data) as w:
        with pytest.raises(ValueError, match="dir must be one of in, out, event"):
            w.append(b"x", dir="sideways")


DISK_FULL_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    import wsrec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    w = wsrec.SessionWriter("v", data=sys.argv[1], flush_interval=60)
    flushed = -1
    try:
        for i in range(1_000_000):
            w.append(b'{"i":%d,"pad":"%s"}' % (i, b"z" * (i % 97)), kind="text")
            if i % 100 == 99:
                w.flush()
                flushed = i
    except wsrec.DiskFull as exc:
        error = str(exc)
    try:
        w.close()
    except wsrec.DiskFull:
        pass
    print(json.dumps({"flushed": flushed, "error": error, "folder": str(w.folder)}))
""")


def test_disk_full_marks_failed_and_keeps_flushed_rows(data):
    out = subprocess.run([sys.executable, "-c", DISK_FULL_CHILD, str(data)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "disk full" in result["error"] and "\n" not in result["error"]
    s = wsrec.open_session(result["folder"])
    assert s.status == "failed" and "disk full" in s.manifest["error"]
    payloads = [f.payload for f in s.frames()]
    assert len(payloads) >= result["flushed"] + 1 > 0
    for i, p in enumerate(payloads):
        assert p == b'{"i":%d,"pad":"%s"}' % (i, b"z" * (i % 97))


def test_started_ns_for_sessions_built_from_other_data(data):
    with wsrec.SessionWriter("v", data=data, started_ns=1_000_000_000_000_000_000) as w:
        w.append(b"a", ts_ns=1_000_000_000_500_000_000, mono_ns=1)
        w.append(b"b", ts_ns=1_000_000_002_000_000_000, mono_ns=2)
    m = load_manifest(w.folder)
    assert w.id.startswith("20010909T014640Z-")
    assert m["started"] == "2001-09-09T01:46:40.000000000Z"
    assert m["ended"] == "2001-09-09T01:46:42.000000000Z"


def _columns(rows):
    """append_columns' arrays from (payload, kwargs) rows as synthetic_rows gives them."""
    import pyarrow as pa
    get = [kw for _, kw in rows]
    return {"payload": pa.array([p for p, _ in rows], pa.binary()),
            "ts": pa.array([k["ts_ns"] for k in get], pa.int64()),
            "mono_ns": pa.array([k["mono_ns"] for k in get], pa.int64()),
            "conn": pa.array([k["conn"] for k in get], pa.int32()),
            "stream": pa.array([None] * len(rows), pa.string()),
            "dir": pa.array([k["dir"] for k in get]),
            "kind": pa.array([k["kind"] for k in get]),
            "channels": pa.array([list(k["channels"]) for k in get], pa.list_(pa.string())),
            "symbols": pa.array([list(k["symbols"]) for k in get], pa.list_(pa.string()))}


def test_append_columns_stores_what_append_would(data):
    from conftest import synthetic_rows
    rows = list(synthetic_rows(300))
    with wsrec.SessionWriter("alpaca", data=data / "a", session_id="s") as one:
        for payload, kw in rows:
            one.append(payload, **kw)
    with wsrec.SessionWriter("alpaca", data=data / "b", session_id="s") as many:
        many.append(*rows[0][:1], **rows[0][1])
        assert many.append_columns(_columns(rows[1:200])) == 1
        many.append_columns(_columns(rows[200:]))
    a, b = (wsrec.open_session(w.folder).table() for w in (one, many))
    assert a.drop_columns(["session"]).equals(b.drop_columns(["session"]))


def test_append_columns_refuses_rows_out_of_order_or_of_unknown_direction(data):
    import pyarrow as pa
    from conftest import synthetic_rows
    rows = list(synthetic_rows(10))
    with wsrec.SessionWriter("v", data=data) as w:
        backwards = _columns(rows[::-1])
        with pytest.raises(UsageError, match="mono_ns goes back"):
            w.append_columns(backwards)
        odd = _columns(rows)
        odd["dir"] = pa.array(["in"] * 9 + ["sideways"])
        with pytest.raises(UsageError, match="dir must be one of"):
            w.append_columns(odd)
        assert w.rows == 0


def test_append_columns_events_make_connections(data):
    import pyarrow as pa
    with wsrec.SessionWriter("v", data=data) as w:
        w.append_columns({
            "payload": pa.array([b'{"url":"wss://x/"}', b"m", b'{"code":1000}'], pa.binary()),
            "ts": pa.array([10, 20, 30], pa.int64()), "mono_ns": pa.array([1, 2, 3]),
            "conn": pa.array([0, 0, 0], pa.int32()), "stream": pa.array(["main"] * 3),
            "dir": pa.array(["event", "in", "event"]), "kind": pa.array(["open", "text", "close"]),
            "channels": pa.array([[]] * 3, pa.list_(pa.string())),
            "symbols": pa.array([[]] * 3, pa.list_(pa.string()))})
    conns = wsrec.open_session(w.folder).manifest["connections"]
    assert [(c["conn"], c.get("url"), c.get("code")) for c in conns] == [(0, "wss://x/", 1000)]


def test_pending_since_is_the_oldest_row_not_yet_durable(data):
    t0 = 1_795_000_000_000_000_000
    w = wsrec.SessionWriter("lag", data=data, flush_interval=60)   # no flush meanwhile
    try:
        assert w.pending_since_ns is None
        w.append(b"a", ts_ns=t0, mono_ns=5_000)
        w.append(b"b", ts_ns=t0, mono_ns=6_000)
        assert w.pending_since_ns == 5_000
        w.flush()
        assert w.pending_since_ns is None
        w.append(b"c", ts_ns=t0, mono_ns=7_000)
        assert w.pending_since_ns == 7_000
    finally:
        w.close()
    assert w.pending_since_ns is None
