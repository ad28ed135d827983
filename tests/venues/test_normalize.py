"""The normalizing framework (wsrec.venues.normalize) with a small venue of its own."""

import json

import pyarrow as pa
import pytest

from wsrec.errors import UsageError
from wsrec.venues.base import Venue
from wsrec.venues.normalize import (FIELDS, TABLES, Normalizer, exchange_times, parse_table,
                                    schema)

TS = pa.timestamp("ns", tz="UTC")


class Toy(Venue):
    """Frames ``{"k": "trade"|"book", ...}``; a book frame with "full" is a snapshot."""
    name = "toy"
    exch_time = ((rb'"at":(?P<t>\d+)', "ms"),)
    normalized = {"trades": ("trade",), "book_changes": ("book",)}

    def normalize(self, table, message, channel, state):
        if table == "trades":
            return [(None, t["s"], str(t["id"]), t["side"], float(t["p"]), float(t["q"]))
                    for t in message["trades"]]
        full = message.get("full", False)
        t = message["at"] * 1_000_000
        rows = [(t, message["s"], full, side, float(p), float(q))
                for side in ("bid", "ask") for p, q in message[side + "s"]]
        return rows if rows or not full else [(t, message["s"], True, None, None, None)]


def frames(*rows):
    """A session-like batch from (seq, ts, channel, payload[, kind])."""
    cols = {"seq": [], "ts": [], "stream": [], "conn": [], "dir": [], "kind": [],
            "channel": [], "channels": [], "payload": []}
    for seq, ts, channel, payload, *kind in rows:
        payload = payload if isinstance(payload, bytes) else \
            json.dumps(payload, separators=(",", ":")).encode()
        for name, value in (("seq", seq), ("ts", ts), ("stream", "main"), ("conn", 1),
                            ("dir", "in"), ("kind", kind[0] if kind else "text"),
                            ("channel", channel), ("channels", [channel]),
                            ("payload", payload)):
            cols[name].append(value)
    payloads = pa.array(cols["payload"], pa.binary())
    return pa.RecordBatch.from_pydict({
        **{k: v for k, v in cols.items() if k not in ("ts", "payload")},
        "ts": pa.array(cols["ts"], pa.int64()).cast(TS),
        "exch_ts": exchange_times(payloads, Toy.exch_time),
        "payload": payloads,
    })


def plain(*batches):
    """Rows as dicts, times as int ns."""
    rows = []
    for b in batches:
        cols = {n: (c.cast(pa.int64()) if c.type == TS else c).to_pylist()
                for n, c in zip(b.schema.names, b.columns)}
        rows += [dict(zip(cols, values)) for values in zip(*cols.values())]
    return rows


def test_parse_table():
    assert parse_table("trades") == ("trades", 0, 0)
    assert parse_table("book_snapshots") == ("book_snapshots", 10, 0)
    assert parse_table("book_snapshots:5:100ms") == ("book_snapshots", 5, 100_000_000)
    assert parse_table("book_snapshots:25:1s") == ("book_snapshots", 25, 1_000_000_000)
    for bad in ("tardes", "book_snapshots:0:1s", "book_snapshots:x", ""):
        with pytest.raises(UsageError):
            parse_table(bad)


def test_schemas_share_head_and_tail():
    for table in TABLES:
        names = schema(table, 2).names
        assert names[:3] == ["local_ts", "exch_ts", "venue"] and names[-1] == "seq"
        if table != "book_snapshots":
            assert names[3:-1] == [n for n, _ in FIELDS[table]]
    assert schema("book_snapshots", 2).names[3:-1] == [
        "symbol", "bid_0_px", "bid_0_sz", "bid_1_px", "bid_1_sz",
        "ask_0_px", "ask_0_sz", "ask_1_px", "ask_1_sz"]


def test_exchange_times_units_and_malformed_values():
    payloads = pa.array([b'{"t":"2023-04-06T11:54:26.838232225Z"}', b'{"ms":1787195046105}',
                         b'{"ns":"1679568591503926199"}', b'{"t":"2019-05-04T00:00:00.5"}',
                         b'{"t":"2023-13-06T11:54:26Z"}', b'{"ms":99999999999999999999}',
                         b'{"t":"\xff"}', b"no time", b'{"t":"2024-01-01T01:00:00+01:00"}'],
                        pa.binary())
    spec = [(rb'"t":"(?P<t>[^"]+)"', "rfc3339"), (rb'"ms":(?P<t>\d+)', "ms"),
            (rb'"ns":"(?P<t>\d+)"', "ns")]
    got = exchange_times(payloads, spec).cast(pa.int64()).to_pylist()
    assert got == [1680782066838232225, 1787195046105000000, 1679568591503926199,
                   1556928000500000000, None, None, None, None, 1704067200000000000]


def test_trades_rows_counts_and_unmapped_frames():
    v = Toy()
    n = Normalizer(v, "trades")
    batch = frames(
        (0, 1_000, "trade", {"at": 5, "trades": [{"s": "X", "id": 1, "side": "buy",
                                                  "p": "1.5", "q": "2"}]}),
        (1, 2_000, "book", {"at": 6, "s": "X", "bids": [], "asks": []}),   # not a trade
        (2, 3_000, "trade", {"trades": [{"s": "X"}]}),                      # can't be mapped
        (3, 4_000, "trade", b"not json"),                                   # nor this
        (4, 5_000, "trade", {"trades": []}),                                # empty: mapped
    )
    out = n.feed(batch)
    assert out.schema == schema("trades")
    assert plain(out) == [{
        "local_ts": 1_000, "exch_ts": 5_000_000,
        "venue": "toy", "symbol": "X", "id": "1", "side": "buy", "price": 1.5, "size": 2.0,
        "seq": 0}]
    assert (n.mapped, n.unmapped, n.unmapped_seqs) == (2, 2, [2, 3])


def test_book_snapshots_rebuilt_from_changes_per_interval():
    n = Normalizer(Toy(), "book_snapshots", depth=2, interval_ns=100)
    ms = 1_000_000
    batch = frames(
        (0, 10, "book", {"at": 1, "s": "X", "full": True,
                         "bids": [["10", "1"], ["9", "2"], ["8", "3"]], "asks": [["11", "4"]]}),
        (1, 50, "book", {"at": 2, "s": "X", "bids": [["10", "0"]], "asks": []}),
        (2, 150, "book", {"at": 3, "s": "X", "bids": [], "asks": [["12", "5"]]}),
        (3, 160, "book", {"at": 4, "s": "X", "full": True, "bids": [["7", "1"]],
                          "asks": [["13", "1"]]}),
    )
    rows = plain(n.feed(batch), n.finish())
    got = [(r["local_ts"], r["seq"],
            r["bid_0_px"], r["bid_1_px"], r["ask_0_px"], r["ask_1_px"]) for r in rows]
    # interval [0, 100): the snapshot, then the best bid removed; [100, 200): a new snapshot
    assert got == [(100, 1, 9.0, 8.0, 11.0, None), (200, 3, 7.0, None, 13.0, None)]
    assert rows[0]["exch_ts"] == 2 * ms


def test_book_snapshots_every_change_when_interval_is_zero():
    n = Normalizer(Toy(), "book_snapshots", depth=1)
    batch = frames(
        (0, 10, "book", {"at": 1, "s": "X", "full": True, "bids": [["10", "1"]],
                         "asks": [["11", "1"]]}),
        (1, 20, "book", {"at": 2, "s": "Y", "full": True, "bids": [["5", "1"]], "asks": []}),
        (2, 30, "book", {"at": 3, "s": "X", "bids": [["10.5", "2"]], "asks": []}),
    )
    rows = plain(n.feed(batch), n.finish())
    assert [(r["symbol"], r["seq"], r["bid_0_px"], r["ask_0_px"]) for r in rows] == [
        ("X", 0, 10.0, 11.0), ("Y", 1, 5.0, None), ("X", 2, 10.5, 11.0)]


def test_a_frame_whose_values_do_not_fit_the_schema_is_unmapped_not_fatal():
    n = Normalizer(Toy(), "trades")
    good = {"s": "X", "id": 1, "side": "buy", "p": "1", "q": "2"}
    batch = frames((0, 1, "trade", {"trades": [good]}),
                   (1, 2, "trade", {"trades": [{**good, "s": 7}]}),      # symbol not text
                   (2, 3, "trade", {"trades": [good, good]}))
    out = plain(n.feed(batch))
    assert [r["seq"] for r in out] == [0, 2, 2]
    assert (n.mapped, n.unmapped, n.unmapped_seqs) == (2, 1, [1])


def test_a_venue_decode_override_is_used_for_text_frames():
    class Upper(Toy):
        def decode(self, payload, text):
            return json.loads(payload.replace(b'"side":"buy"', b'"side":"sell"'))

    n = Normalizer(Upper(), "trades")
    batch = frames((0, 1, "trade", {"trades": [{"s": "X", "id": 1, "side": "buy", "p": "1",
                                                "q": "2"}]}))
    assert plain(n.feed(batch))[0]["side"] == "sell"


def test_an_empty_full_book_clears_the_book():
    n = Normalizer(Toy(), "book_snapshots", depth=1)
    batch = frames(
        (0, 10, "book", {"at": 1, "s": "X", "full": True, "bids": [["10", "1"]],
                         "asks": [["11", "1"]]}),
        (1, 20, "book", {"at": 2, "s": "X", "full": True, "bids": [], "asks": []}),
    )
    rows = plain(n.feed(batch), n.finish())
    assert [(r["seq"], r["bid_0_px"], r["ask_0_px"]) for r in rows] == [
        (0, 10.0, 11.0), (1, None, None)]


def test_non_finite_numbers_become_null():
    n = Normalizer(Toy(), "trades")
    batch = frames((0, 1, "trade", {"trades": [{"s": "X", "id": 1, "side": "buy", "p": "NaN",
                                                "q": "inf"}]}))
    assert [(r["price"], r["size"]) for r in plain(n.feed(batch))] == [(None, None)]
