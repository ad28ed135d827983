"""exch_ts in the session, and a session's normalized view (Session.normalized)."""

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import wsrec
from conftest import T0, TRADE, hyperliquid_session, record_from_sim
from wsrec.errors import UsageError
from wsrec.store._part import file_sha256
from wsrec.store.info import details
from wsrec.store.manifest import load_manifest, save_manifest
from wsrec.store.schema import SCHEMA_NO_EXCH_TS
from wsrec.store.verify import verify
from wsrec.venues.normalize import schema

def exch_column(session):
    return session.table(columns=["exch_ts"]).column("exch_ts").cast(pa.int64()).to_pylist()


def test_parts_carry_exch_ts_from_the_venue_rules(data):
    s = hyperliquid_session(data)
    part = pq.read_table(s.parts[0])
    assert part.schema.field("exch_ts").type == pa.timestamp("ns", tz="UTC")
    # open event and outbound frame: none; then the frames' own "time" (ms)
    assert exch_column(s) == [None, None, 1787195046105000000, 1787195067883000000, None]


def test_unknown_venue_has_null_exch_ts(data):
    with wsrec.SessionWriter("somewhere", data=data) as w:
        w.append(b'{"time":1787195046105}', kind="text")
    assert exch_column(wsrec.open_session(w.folder)) == [None]


def test_parts_from_before_exch_ts_read_with_it_computed(data):
    s = hyperliquid_session(data)
    expected = s.table()
    path = s.parts[0]
    old = pq.read_table(path).drop_columns(["exch_ts"])
    assert old.schema.equals(SCHEMA_NO_EXCH_TS)
    pq.write_table(old, path, compression="zstd")
    m = load_manifest(s.path)
    m["parts"][0].update(sha256=file_sha256(path), bytes=path.stat().st_size)
    save_manifest(s.path, m)
    again = wsrec.open_session(s.path)
    assert again.table().equals(expected)
    assert list(again.batches(columns=["exch_ts"], lean=True, batch_size=2))
    assert verify(again) == []


def test_info_reports_receive_latency_per_channel(data):
    d = details(hyperliquid_session(data))
    assert set(d["latency"]) == {"trades", "l2Book"}
    trades = d["latency"]["trades"]
    assert trades["count"] == 1
    assert trades["p50_ms"] == pytest.approx((T0 - 1787195046105000000) / 1e6)


def test_normalized_trades_and_the_unmapped_frame(data):
    s = hyperliquid_session(data)
    rows = s.normalized("trades")
    batches = list(rows)
    table = pa.Table.from_batches(batches, schema=schema("trades"))
    assert table.column("price").to_pylist() == [69170.0]
    assert table.column("side").to_pylist() == ["sell"]
    assert table.column("local_ts").cast(pa.int64()).to_pylist() == [T0]
    assert table.column("exch_ts").cast(pa.int64()).to_pylist() == [1787195046105000000]
    assert (rows.frames, rows.mapped, rows.unmapped) == (2, 1, 1)
    assert rows.unmapped_seqs == [(s.id, 4)]
    assert "1 of 2 frames could not be mapped to trades" in rows.report()


def test_normalized_filters_and_book_snapshots(data):
    s = hyperliquid_session(data)
    assert list(s.normalized("trades", symbols="ETH")) == []
    assert list(s.normalized("trades", end=T0)) == []
    snap = pa.Table.from_batches(list(s.normalized("book_snapshots:1:1s")))
    assert snap.column("bid_0_px").to_pylist() == [69172.0]
    assert snap.column("ask_0_sz").to_pylist() == [8.45682]
    assert snap.column("local_ts").cast(pa.int64()).to_pylist() == [
        (T0 + 100_000_000) // 10**9 * 10**9 + 10**9]


def test_a_table_the_venue_does_not_have_is_a_usage_error(data):
    s = hyperliquid_session(data)
    with pytest.raises(UsageError, match="no blocks .*trades"):
        s.normalized("blocks")
    with pytest.raises(UsageError, match="unknown table"):
        s.normalized("candles")


@pytest.mark.timeout(60)
def test_normalizing_what_the_simulator_sent_maps_every_frame(data):
    _, _, s = record_from_sim("hyperliquid", data, channels=["trades", "l2Book", "bbo"],
                              symbols=["BTC", "ETH"])
    for table in ("trades", "quotes", "book_changes"):
        rows = s.normalized(table)
        n = sum(b.num_rows for b in rows)
        assert n > 0 and rows.unmapped == 0, (table, rows.summary())
    times = pc.drop_null(s.table(columns=["exch_ts"], direction="in").column("exch_ts"))
    assert len(times) > 0
    json.dumps(details(s)["latency"])


def test_a_named_recording_follows_its_venues_rules(data):
    """--name gives the folder another name; the frames are still Hyperliquid's."""
    with wsrec.SessionWriter("hl-team-a", data=data, args={"venue": "hyperliquid"}) as w:
        w.append(TRADE, kind="text", conn=1, channels=("trades",), symbols=("BTC",),
                 ts_ns=T0, mono_ns=0)
    s = wsrec.open_session(w.folder)
    assert s.venue == "hl-team-a" and s.rules == "hyperliquid"
    assert exch_column(s) == [1787195046105000000]
    assert sum(b.num_rows for b in s.normalized("trades")) == 1
