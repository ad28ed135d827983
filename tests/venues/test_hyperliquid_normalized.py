"""Hyperliquid's exchange times and normalized rows, from literal frames of venue-docs and
of the venue's documented message types (WsTrade, WsBook, WsBbo, Candle)."""

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from wsrec.sim import SimOptions
from wsrec.venues import get_venue
from wsrec.venues.hyperliquid import Hyperliquid
from wsrec.venues.normalize import MAP_ERRORS, Normalizer, schema

from conftest import record_from_sim
from normalized_frames import frames_batch

TS = pa.timestamp("ns", tz="UTC")
MS = 1_000_000

# venue-docs/PROTOCOLS.md section 2
TRADES = (b'{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"69170.0","sz":"0.00018",'
          b'"time":1787195046105,"hash":"0x00","tid":456615105517601,"users":["0xf5d8","0x4d20"]},'
          b'{"coin":"BTC","side":"B","px":"69171.0","sz":"0.5","time":1787195046107,'
          b'"hash":"0x01","tid":456615105517602,"users":["0x4d20","0xf5d8"]}]}')
BOOK = (b'{"channel":"l2Book","data":{"coin":"BTC","time":1787195067883,"levels":'
        b'[[{"px":"69172.0","sz":"1.21098","n":5},{"px":"69171.0","sz":"0.5","n":1}],'
        b'[{"px":"69173.0","sz":"8.45682","n":30}]]}}')
# the documented types: WsBbo {coin, time, bbo: [WsLevel | null, WsLevel | null]} and Candle
BBO = (b'{"channel":"bbo","data":{"coin":"BTC","time":1790358617881,"bbo":'
       b'[{"px":"83757.0","sz":"22.61305","n":81},{"px":"83758.0","sz":"0.00016","n":1}]}}')
CANDLE = (b'{"channel":"candle","data":{"t":1790358600000,"T":1790358659999,"s":"BTC","i":"1m",'
          b'"o":"83765.0","c":"83765.0","h":"83770.0","l":"83756.0","v":"0.3317","n":36}}')
ACK = (b'{"channel":"subscriptionResponse","data":{"method":"subscribe",'
       b'"subscription":{"type":"trades","coin":"SOL"}}}')
MIDS = b'{"channel":"allMids","data":{"mids":{"BTC":"69172.5"}}}'
FILLS = (b'{"channel":"userFills","data":{"isSnapshot":true,"user":"0xabc","fills":'
         b'[{"coin":"BTC","px":"69170.0","sz":"0.1","side":"B","time":1787195046000}]}}')


def rows(table, frame, channel=None):
    return list(Hyperliquid().normalize(table, json.loads(frame), channel, {}))


def test_exchange_time_is_the_first_time_else_a_candles_start():
    spaced = json.dumps(json.loads(CANDLE)).encode()
    payloads = [TRADES, BOOK, BBO, CANDLE, spaced, FILLS, ACK, MIDS, b'{"channel":"pong"}',
                b"Websocket connection established."]
    got = Hyperliquid().exch_ts(pa.array(payloads, pa.binary()),
                                pa.array(["text"] * len(payloads)))
    assert got.cast(pa.int64()).to_pylist() == [
        1787195046105 * MS, 1787195067883 * MS, 1790358617881 * MS, 1790358600000 * MS,
        1790358600000 * MS, 1787195046000 * MS, None, None, None, None]


def test_trades_sides_are_the_aggressors():
    assert rows("trades", TRADES) == [
        (1787195046105 * MS, "BTC", "456615105517601", "sell", 69170.0, 0.00018),
        (1787195046107 * MS, "BTC", "456615105517602", "buy", 69171.0, 0.5)]
    assert rows("trades", TRADES.replace(b'"side":"A"', b'"side":"X"'))[0][3] == "unknown"


def test_quotes_from_bbo_with_an_empty_side():
    assert rows("quotes", BBO) == [(1790358617881 * MS, "BTC", 83757.0, 22.61305, 83758.0,
                                    0.00016)]
    no_ask = BBO.replace(b'{"px":"83758.0","sz":"0.00016","n":1}', b"null")
    assert rows("quotes", no_ask) == [(1790358617881 * MS, "BTC", 83757.0, 22.61305, None,
                                       None)]


def test_every_l2book_frame_is_a_whole_book():
    t = 1787195067883 * MS
    assert rows("book_changes", BOOK) == [(t, "BTC", True, "bid", 69172.0, 1.21098),
                                          (t, "BTC", True, "bid", 69171.0, 0.5),
                                          (t, "BTC", True, "ask", 69173.0, 8.45682)]


def test_bars_from_candles():
    bar = (1790358600000 * MS, "BTC", "1m", 83765.0, 83770.0, 83756.0, 83765.0, 0.3317, 36)
    assert rows("bars", CANDLE) == [bar]
    listed = CANDLE.replace(b'"data":{', b'"data":[{').replace(b"}}", b"}]}")
    assert rows("bars", listed) == [bar]


def test_frames_of_other_channels_give_no_rows():
    assert rows("trades", BOOK) == [] and rows("quotes", TRADES) == []
    assert rows("book_changes", BBO) == [] and rows("bars", MIDS) == []


@pytest.mark.parametrize("table,frame", [
    ("trades", TRADES.replace(b'"px":"69170.0",', b"")),
    ("trades", TRADES.replace(b'"px":"69170.0"', b'"px":"n/a"')),
    ("trades", TRADES.replace(b"1787195046105", b"1787195046105000")),   # past int64 ns
    ("trades", b'{"channel":"trades","data":{"coin":"BTC"}}'),
    ("trades", b'{"channel":"trades"}'),
    ("trades", b'["trades"]'),
    ("quotes", BBO.replace(b'"bbo":[', b'"bbo":[null,')),
    ("book_changes", BOOK.replace(b'"levels":[[', b'"levels":[[],[')),
    ("book_changes", BOOK.replace(b'"time":1787195067883,', b"")),
    ("bars", CANDLE.replace(b'"o":"83765.0",', b"")),
])
def test_frames_that_cannot_be_mapped_raise(table, frame):
    with pytest.raises(MAP_ERRORS):
        rows(table, frame)


def test_no_sequence_numbers():
    venue = Hyperliquid()
    assert venue.sequenced == () and list(venue.check_sequence(json.loads(BOOK), "l2Book",
                                                                {})) == []
    assert venue.normalized == {"trades": ("trades",), "quotes": ("bbo",),
                                "book_changes": ("l2Book",), "bars": ("candle",)}


# -- end to end ------------------------------------------------------------------------------

def plain(batch) -> dict:
    """A batch as lists, times as integer nanoseconds."""
    return {f.name: (c.cast(pa.int64()) if f.type == TS else c).to_pylist()
            for f, c in zip(batch.schema, batch.columns)}


def test_normalizer_over_a_session_batch():
    venue = get_venue("hyperliquid")
    subscribe = b'{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}'
    frames = [([], subscribe, "text", "out"),
              (["subscriptionResponse"], ACK, "text", "in"),
              (["trades"], TRADES, "text", "in"),
              (["l2Book"], BOOK, "text", "in"),
              (["trades"], b'{"channel":"trades","data":[{"coin":"BTC"}]}', "text", "in"),
              (["trades"], b'{"channel":"trades","data":[]}', "text", "in"),
              (["pong"], b'{"channel":"pong"}', "text", "in")]
    normalizer = Normalizer(venue, "trades")
    out = normalizer.feed(frames_batch(venue, frames))
    assert out.schema == schema("trades")
    assert (normalizer.mapped, normalizer.unmapped, normalizer.unmapped_seqs) == (2, 1, [5])
    assert plain(out) == {
        "local_ts": [1_800_000_000_000_000_002] * 2,
        "exch_ts": [1787195046105 * MS, 1787195046107 * MS], "venue": ["hyperliquid"] * 2,
        "symbol": ["BTC", "BTC"], "id": ["456615105517601", "456615105517602"],
        "side": ["sell", "buy"], "price": [69170.0, 69171.0], "size": [0.00018, 0.5],
        "seq": [3, 3]}


def test_book_snapshots_replace_the_whole_book_each_frame():
    venue = get_venue("hyperliquid")
    smaller = (b'{"channel":"l2Book","data":{"coin":"BTC","time":1787195068383,"levels":'
               b'[[{"px":"69170.0","sz":"2","n":1}],[{"px":"69174.0","sz":"3","n":2}]]}}')
    normalizer = Normalizer(venue, "book_snapshots", depth=2)
    batch = frames_batch(venue, [("l2Book", BOOK), ("l2Book", smaller)])
    out = plain(pa.Table.from_batches([normalizer.feed(batch), normalizer.finish()])
                .combine_chunks().to_batches()[0])
    assert out["exch_ts"] == [1787195067883 * MS, 1787195068383 * MS]
    assert (out["bid_0_px"], out["bid_1_px"], out["ask_0_px"], out["ask_0_sz"]) == (
        [69172.0, 69170.0], [69171.0, None], [69173.0, 69174.0], [8.45682, 3.0])


@pytest.mark.timeout(60)
def test_what_the_simulator_sends_normalizes_completely(data):
    _, _, session = record_from_sim(
        "hyperliquid", data, sim=SimOptions(rate=400), symbols=["BTC", "ETH"],
        channels=["trades", "l2Book", "bbo", "candle"])
    venue = get_venue("hyperliquid")
    columns = ["seq", "ts", "stream", "conn", "dir", "kind", "channel", "channels", "payload"]
    batches = []
    for b in session.batches(columns=columns):
        times = venue.exch_ts(b.column("payload"), b.column("kind"))
        batches.append(pa.RecordBatch.from_arrays([*b.columns, times], columns + ["exch_ts"]))
    data_frames = [b.filter(pc.is_in(b.column("channel"),
                                     pa.array(["trades", "l2Book", "bbo", "candle"])))
                   for b in batches]
    assert sum(b.num_rows for b in data_frames) > 0
    assert all(b.column("exch_ts").null_count == 0 for b in data_frames)
    for table in ("trades", "quotes", "bars", "book_changes", "book_snapshots"):
        normalizer = Normalizer(venue, table)
        out = [normalizer.feed(b) for b in batches] + [normalizer.finish()]
        assert sum(b.num_rows for b in out) > 0, table
        assert normalizer.unmapped == 0 and normalizer.mapped > 0, table
