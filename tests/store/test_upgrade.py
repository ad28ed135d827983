"""Format-1 sessions: listed, refused with a hint, and migrated losslessly by repair --upgrade."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.errors import OutdatedFormat
from wsrec.store.upgrade import V1_JOURNAL_SCHEMA, upgrade
from wsrec.store.verify import verify

V1 = Path(__file__).resolve().parents[1] / "data" / "v1"
_D = pa.dictionary(pa.int32(), pa.string())
V1_SCHEMA = pa.schema([
    ("ts", pa.timestamp("ns", tz="UTC")), ("mono_ns", pa.int64()), ("seq", pa.uint64()),
    ("conn", pa.int32()), ("dir", _D), ("kind", _D), ("channel", _D), ("symbol", _D),
    ("channels", pa.list_(_D)), ("symbols", pa.list_(_D)), ("payload", pa.binary()),
    ("venue", _D), ("session", _D)])
V1_JOURNAL = V1_JOURNAL_SCHEMA


def run(*args):
    return CliRunner().invoke(cli, list(args))


def v1_rows(n):
    """Two logical streams (v1 conn 0 and 1); stream 0 reconnects once."""
    rows = []
    t = 1_795_000_000_000_000_000

    def add(conn, dir, kind, payload, chans=(), syms=()):
        rows.append(dict(seq=len(rows), ts=t + len(rows), mono_ns=1000 + len(rows), conn=conn,
                         dir=dir, kind=kind, channels=list(chans), symbols=list(syms),
                         payload=payload))
    add(0, "event", "open", b'{"url":"wss://a"}')
    add(1, "event", "open", b'{"url":"wss://b"}')
    for i in range(n):
        add(i % 2, "in", "text", b'{"i":%d}' % i, ["trades"], ["BTC", "ETH"] if i % 3 else ["BTC"])
        if i == n // 2:
            add(0, "event", "close", b'{"code":1006,"reason":""}')
            add(0, "event", "reconnect", b'{"attempt":1}')
            add(0, "event", "open", b'{"url":"wss://a"}')
    add(0, "event", "close", b'{"code":1000}')
    add(1, "event", "close", b'{"code":1000}')
    return rows


def write_v1(root, rows, *, part_rows=None, journal_rows=0, status="complete"):
    """A format-1 session as wsrec 0.1 wrote it: dictionary columns, small row groups."""
    folder = root / "v" / "20261101T000000Z-0001"
    folder.mkdir(parents=True)
    listed = rows[:len(rows) - journal_rows]
    table = pa.table({
        "ts": pa.array([r["ts"] for r in listed], pa.int64()).cast(V1_SCHEMA.field("ts").type),
        "mono_ns": [r["mono_ns"] for r in listed],
        "seq": pa.array([r["seq"] for r in listed], pa.uint64()),
        "conn": pa.array([r["conn"] for r in listed], pa.int32()),
        "dir": pa.array([r["dir"] for r in listed]).dictionary_encode(),
        "kind": pa.array([r["kind"] for r in listed]).dictionary_encode(),
        "channel": pa.array([(r["channels"] or [None])[0] if len(r["channels"]) == 1 else None
                             for r in listed], pa.string()).dictionary_encode(),
        "symbol": pa.array([r["symbols"][0] if len(r["symbols"]) == 1 else None
                            for r in listed], pa.string()).dictionary_encode(),
        "channels": pa.array([r["channels"] for r in listed], pa.list_(pa.string()))
                      .cast(pa.list_(_D)),
        "symbols": pa.array([r["symbols"] for r in listed], pa.list_(pa.string()))
                     .cast(pa.list_(_D)),
        "payload": pa.array([r["payload"] for r in listed], pa.binary()),
        "venue": pa.array(["v"] * len(listed)).dictionary_encode(),
        "session": pa.array([folder.name] * len(listed)).dictionary_encode(),
    }, schema=V1_SCHEMA)
    pq.write_table(table, folder / "part-000000.parquet", row_group_size=part_rows)
    if journal_rows:
        tail = rows[len(rows) - journal_rows:]
        batch = pa.RecordBatch.from_pylist(tail, schema=V1_JOURNAL)
        with pa.OSFile(str(folder / "part-000001.journal"), "wb") as sink:
            with pa.ipc.new_stream(sink, V1_JOURNAL) as writer:
                writer.write_batch(batch)
    manifest = {"format_version": 1, "venue": "v", "session": folder.name,
                "wsrec_version": "0.1.0", "args": {"venue": "v"}, "settings": {},
                "status": status, "started": "2026-11-18T09:46:40.000000000Z",
                "ended": None if status == "recording" else "2026-11-18T09:46:41.000000000Z",
                "error": None,
                "parts": [{"file": "part-000000.parquet", "rows": len(listed),
                           "start": "2026-11-18T09:46:40.000000000Z",
                           "end": "2026-11-18T09:46:41.000000000Z"}],
                "connections": [], "gaps": []}
    (folder / "session.json").write_text(json.dumps(manifest))
    return folder


def test_v1_is_listed_and_refused_with_a_hint(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(V1, root)
    listed = run("ls", "--data", str(root))
    assert listed.exit_code == 0 and listed.output.count("format-1") == 3
    for command in (["replay", "alpaca", "--speed", "max"], ["info", "alpaca"],
                    ["convert", "alpaca", "--format", "jsonl"]):
        result = run(*command, "--data", str(root))
        assert result.exit_code == 1, (command, result.output)
        assert "format version 1; run 'wsrec repair --upgrade" in result.output
        assert "Traceback" not in result.output
    assert run("verify", "--data", str(root), "flow").exit_code == 1
    with pytest.raises(OutdatedFormat):
        list(wsrec.open_session("dfuse", data=root).frames())


def test_upgrade_of_real_v1_samples_is_lossless(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(V1, root)
    before = {}
    for folder in root.glob("*/*"):
        table = ds.dataset(str(folder / "part-000000.parquet"), format="parquet").to_table()
        before[folder.parent.name] = table
    result = run("repair", "--data", str(root), "--upgrade", "--all")
    assert result.exit_code == 0, result.output
    assert result.output.count("from format 1 to 2") == 3
    for venue, old in before.items():
        session = wsrec.open_session(venue, data=root)
        assert session.format_version == 2 and session.state == "complete"
        assert verify(session) == []
        new = session.table()
        for column in ("payload", "mono_ns", "ts", "dir", "kind"):
            want = new.schema.field(column).type
            if column == "ts":
                new, old = (t.set_column(t.schema.get_field_index("ts"), "ts",
                                         t.column("ts").cast(pa.int64())) for t in (new, old))
                want = pa.int64()
            assert new.column(column).to_pylist() == \
                old.column(column).cast(want).to_pylist(), column
        assert new.column("stream").unique().to_pylist() == ["0"]
        assert session.manifest["started"] and session.manifest["upgraded_from"] == 1
    dfuse = wsrec.open_session("dfuse", data=root)
    held = {s for f in dfuse.frames() for s in f.symbols}
    assert held == {"eosio.token"}                     # accounts, no longer request ids
    assert run("repair", "--data", str(root), "--upgrade", "--all").output == ""  # idempotent


def test_upgrade_maps_conn_to_stream_and_numbers_connections(tmp_path):
    rows = v1_rows(5000)
    folder = write_v1(tmp_path / "data", rows, part_rows=700)
    assert pq.ParquetFile(folder / "part-000000.parquet").metadata.num_row_groups > 5
    assert upgrade(folder)
    session = wsrec.open_session(folder)
    frames = list(session.frames(direction="all"))
    assert [f.payload for f in frames] == [r["payload"] for r in rows]
    assert [f.symbols for f in frames] == [r["symbols"] for r in rows]
    assert {(f.stream, f.conn) for f in frames if f.dir == "in"} == {
        ("0", 0), ("1", 1), ("0", 2)}
    [reconnect] = [f for f in frames if f.kind == "reconnect"]
    assert reconnect.conn is None and reconnect.stream == "0"
    m = session.manifest
    assert [(c["conn"], c["stream"]) for c in m["connections"]] == [(0, "0"), (1, "1"), (2, "0")]
    assert [(g["stream"], g["after_conn"], g["conn"]) for g in m["gaps"]] == [("0", 0, 2)]
    assert verify(session) == []


def test_upgrade_of_a_crashed_v1_session_keeps_its_journal_rows(tmp_path):
    rows = v1_rows(300)
    folder = write_v1(tmp_path / "data", rows, journal_rows=100, status="recording")
    assert upgrade(folder)
    session = wsrec.open_session(folder)
    assert session.state == "recovered" and session.rows() == len(rows)
    assert [f.payload for f in session.frames(direction="all")] == [r["payload"] for r in rows]
    assert not list(folder.parent.glob(".*"))  # no staging or backup folder left
