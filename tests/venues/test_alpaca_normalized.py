"""Alpaca's exchange times and normalized rows, from literal frames of venue-docs and the
venue's documentation pages (stocks, crypto, options), JSON and msgpack."""

import json

import msgpack
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from wsrec.sim import SimOptions
from wsrec.venues import get_venue
from wsrec.venues.alpaca import Alpaca, packed_item, rfc3339_ns
from wsrec.venues.normalize import MAP_ERRORS, Normalizer, schema

from conftest import record_from_sim
from normalized_frames import frames_batch

TS = pa.timestamp("ns", tz="UTC")

# venue-docs/PROTOCOLS.md section 1 and venue-docs/alpaca.md
TRADE = (b'[{"T":"t","S":"AAPL","i":628,"x":"K","p":162.92,"s":3,"c":["@","F","T","I"],"z":"C",'
         b'"t":"2023-04-06T11:54:26.838232225Z"}]')
QUOTE = (b'[{"T":"q","S":"FAKEPACA","bx":"O","bp":133.85,"bs":4,"ax":"R","ap":135.77,"as":5,'
         b'"c":["R"],"z":"A","t":"2024-07-24T07:56:53.639713735Z"}]')
BAR = (b'[{"T":"b","S":"FAKEPACA","o":132.65,"h":136,"l":132.12,"c":134.65,"v":205,'
       b'"t":"2024-07-24T07:56:00Z","n":16,"vw":133.7}]')
# docs.alpaca.markets: real-time crypto data (trades carry the taker side) and options
CRYPTO_TRADE = (b'[{"T":"t","S":"AVAX/USD","p":47.299,"s":29.205707815,'
                b'"t":"2024-03-12T10:27:48.858228144Z","i":3447222699101865076,"tks":"S"}]')
CRYPTO_QUOTE = (b'[{"T":"q","S":"BAT/USD","bp":0.35718,"bs":13445.46,"ap":0.3581,"as":13561.902,'
                b'"t":"2024-03-12T10:29:43.111588173Z"}]')
OPTION_TRADE = {"T": "t", "S": "AAPL240315C00172500", "t": "2024-03-11T13:35:35.13312256Z",
                "p": 2.84, "s": 1, "x": "N", "c": "S"}
# alpaca-py's tests: an order book message (no "r": changes), and a news item
BOOK = (b'[{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:50.79613221Z",'
        b'"b":[{"p":65128.1,"s":1.6542}],"a":[{"p":65130.5,"s":0}]}]')
NEWS = {"T": "n", "id": 39358670, "headline": "Broadcom shares are trading higher.",
        "summary": "", "author": "Benzinga Newsdesk", "created_at": "2024-06-17T14:11:00Z",
        "updated_at": "2024-06-17T14:11:00Z", "url": "https://www.benzinga.com/wiim/24/06/x",
        "content": "", "symbols": ["AVGO"], "source": "benzinga"}
WELCOME = b'[{"T":"success","msg":"connected"}]'

T_TRADE, T_QUOTE, T_BAR = 1680782066838232225, 1721807813639713735, 1721807760000000000
T_CRYPTO_TRADE, T_CRYPTO_QUOTE = 1710239268858228144, 1710239383111588173
T_OPTION, T_NEWS = 1710164135133122560, 1718633460000000000
T_BOOK = 1710239930796132210


def rows(table, frame):
    venue = Alpaca()
    return list(venue.normalize(table, json.loads(frame), None, {}))


def packed(*items) -> bytes:
    return msgpack.packb([packed_item(i) for i in items])


def exch(payloads, kinds):
    return Alpaca().exch_ts(pa.array(payloads, pa.binary()), pa.array(kinds)).cast(
        pa.int64()).to_pylist()


def test_exchange_time_is_the_first_t_else_a_news_items_updated_at():
    mixed = QUOTE[:-1] + b"," + TRADE[1:]
    news = json.dumps([NEWS], separators=(",", ":")).encode()
    spaced = json.dumps(json.loads(TRADE), indent=1).encode()
    payloads = [TRADE, QUOTE, BAR, mixed, CRYPTO_TRADE, BOOK, news, spaced,
                WELCOME, b"not json", b""]
    assert exch(payloads, ["text"] * len(payloads)) == [
        T_TRADE, T_QUOTE, T_BAR, T_QUOTE, T_CRYPTO_TRADE, T_BOOK, T_NEWS, T_TRADE,
        None, None, None]


def test_msgpack_frames_have_their_timestamps_read_and_text_frames_their_pattern():
    far = msgpack.packb([{"T": "t", "t": msgpack.Timestamp(2 ** 40)}])   # past int64 ns
    payloads = [packed(OPTION_TRADE), TRADE, packed(NEWS), packed({"T": "success", "msg": "x"}),
                b"\xc1 not msgpack", packed(json.loads(QUOTE)[0], json.loads(TRADE)[0]), far]
    kinds = ["binary", "text", "binary", "binary", "binary", "binary", "binary"]
    assert exch(payloads, kinds) == [T_OPTION, T_TRADE, T_NEWS, None, None, T_QUOTE, None]
    assert exch([TRADE], ["text"]) == [T_TRADE]   # no binary frame: the patterns alone


def test_rfc3339_ns_is_alpacas_time_to_the_nanosecond():
    assert rfc3339_ns("2023-04-06T11:54:26.838232225Z") == T_TRADE
    assert rfc3339_ns("2024-07-24T07:56:00Z") == T_BAR
    assert rfc3339_ns("2024-03-11T13:35:35.13312256Z") == T_OPTION
    assert rfc3339_ns("2024-07-24T08:56:00+01:00") == T_BAR   # another zone: the slow path
    for bad in ("2024-07-24T07:56:xxZ", "2024-07-24T07:56:00.Z", "2024-13-24T07:56:00Z",
                "2262-04-11T23:47:59Z", "yesterday"):
        with pytest.raises(ValueError):
            rfc3339_ns(bad)


def test_trades_stock_crypto_and_option():
    assert rows("trades", TRADE) == [(T_TRADE, "AAPL", "628", "unknown", 162.92, 3.0)]
    assert rows("trades", CRYPTO_TRADE) == [
        (T_CRYPTO_TRADE, "AVAX/USD", "3447222699101865076", "sell", 47.299, 29.205707815)]
    buy = CRYPTO_TRADE.replace(b'"tks":"S"', b'"tks":"B"')
    assert rows("trades", buy)[0][3] == "buy"
    assert rows("trades", json.dumps([OPTION_TRADE]).encode()) == [
        (T_OPTION, "AAPL240315C00172500", None, "unknown", 2.84, 1.0)]


def test_mixed_frames_give_each_table_its_own_items_with_their_own_times():
    mixed = QUOTE[:-1] + b"," + TRADE[1:-1] + b"," + BAR[1:]
    assert rows("trades", mixed) == [(T_TRADE, "AAPL", "628", "unknown", 162.92, 3.0)]
    assert rows("quotes", mixed) == [(T_QUOTE, "FAKEPACA", 133.85, 4.0, 135.77, 5.0)]
    assert [r[:3] for r in rows("bars", mixed)] == [(T_BAR, "FAKEPACA", "1m")]
    assert rows("trades", QUOTE) == [] and rows("book_changes", TRADE) == []


def test_quotes_with_an_empty_side():
    assert rows("quotes", CRYPTO_QUOTE) == [
        (T_CRYPTO_QUOTE, "BAT/USD", 0.35718, 13445.46, 0.3581, 13561.902)]
    no_bid = QUOTE.replace(b'"bp":133.85,"bs":4', b'"bp":0,"bs":0')
    assert rows("quotes", no_bid) == [(T_QUOTE, "FAKEPACA", None, None, 135.77, 5.0)]


def test_bars_minute_updated_and_daily():
    minute = (T_BAR, "FAKEPACA", "1m", 132.65, 136.0, 132.12, 134.65, 205.0, 16)
    assert rows("bars", BAR) == [minute]
    assert rows("bars", BAR.replace(b'"T":"b"', b'"T":"u"')) == [minute]
    assert rows("bars", BAR.replace(b'"T":"b"', b'"T":"d"')) == [minute[:2] + ("1d",) + minute[3:]]
    assert rows("bars", BAR.replace(b',"n":16', b""))[0][-1] is None


def test_book_changes_full_books_and_removals():
    assert rows("book_changes", BOOK) == [(T_BOOK, "BTC/USD", False, "bid", 65128.1, 1.6542),
                                          (T_BOOK, "BTC/USD", False, "ask", 65130.5, 0.0)]
    full = BOOK.replace(b'"a":[{"p":65130.5,"s":0}]', b'"a":[{"p":65130.5,"s":0.5}],"r":true')
    assert [r[2] for r in rows("book_changes", full)] == [True, True]
    assert rows("book_changes", BOOK.replace(b'"b":[{"p":65128.1,"s":1.6542}],', b"")) == [
        (T_BOOK, "BTC/USD", False, "ask", 65130.5, 0.0)]


def test_msgpack_frames_give_the_same_rows_as_json():
    venue = Alpaca()
    for table, frame in (("trades", TRADE), ("quotes", QUOTE), ("bars", BAR),
                         ("book_changes", BOOK)):
        message = venue.decode(packed(*json.loads(frame)), False)
        assert list(venue.normalize(table, message, None, {})) == rows(table, frame)
    with pytest.raises(ValueError):
        venue.decode(b"\x92\x01", False)   # an array cut short


@pytest.mark.parametrize("table,frame", [
    ("trades", b'[{"T":"t","S":"AAPL","i":1,"s":3,"t":"2023-04-06T11:54:26Z"}]'),  # no price
    ("trades", b'{"T":"t","S":"AAPL"}'),                                            # no array
    ("trades", TRADE.replace(b"2023-04-06T11:54:26.838232225Z", b"yesterday")),
    ("trades", TRADE.replace(b'"2023-04-06T11:54:26.838232225Z"', b"1680782066")),
    ("trades", b'["t"]'),
    ("quotes", QUOTE.replace(b'"bp":133.85', b'"bp":"n/a"')),
    ("bars", BAR.replace(b'"o":132.65,', b"")),
    ("book_changes", BOOK.replace(b'{"p":65128.1,"s":1.6542}', b"[65128.1,1.6542]")),
])
def test_frames_that_cannot_be_mapped_raise(table, frame):
    with pytest.raises(MAP_ERRORS):
        rows(table, frame)


def test_no_sequence_numbers():
    venue = Alpaca()
    assert venue.sequenced == () and list(venue.check_sequence(json.loads(TRADE), "trades",
                                                                {})) == []
    assert venue.normalized == {"trades": ("trades",), "quotes": ("quotes",),
                                "bars": ("bars", "updatedBars", "dailyBars"),
                                "book_changes": ("orderbooks",)}


# -- end to end ------------------------------------------------------------------------------

def plain(batch) -> dict:
    """A batch as lists, times as integer nanoseconds."""
    return {f.name: (c.cast(pa.int64()) if f.type == TS else c).to_pylist()
            for f, c in zip(batch.schema, batch.columns)}


def test_normalizer_over_a_session_batch():
    venue = get_venue("alpaca")
    mixed = QUOTE[:-1] + b"," + TRADE[1:]
    broken = b'[{"T":"t","S":"AAPL","i":2}]'
    frames = [(["success"], WELCOME, "text", "in"),
              ([], b'{"action":"subscribe","trades":["AAPL"]}', "text", "out"),
              (["trades"], TRADE, "text", "in"),
              (["quotes"], QUOTE, "text", "in"),
              (["quotes", "trades"], mixed, "text", "in"),
              (["trades"], broken, "text", "in"),
              (["trades"], packed(OPTION_TRADE), "binary", "in")]
    normalizer = Normalizer(venue, "trades")
    out = normalizer.feed(frames_batch(venue, frames))
    assert out.schema == schema("trades")
    assert normalizer.mapped == 3 and normalizer.unmapped == 1
    assert normalizer.unmapped_seqs == [6]
    assert plain(out) == {
        "local_ts": [1_800_000_000_000_000_002, 1_800_000_000_000_000_004,
                     1_800_000_000_000_000_006],
        "exch_ts": [T_TRADE, T_TRADE, T_OPTION], "venue": ["alpaca"] * 3,
        "symbol": ["AAPL", "AAPL", "AAPL240315C00172500"], "id": ["628", "628", None],
        "side": ["unknown"] * 3, "price": [162.92, 162.92, 2.84], "size": [3.0, 3.0, 1.0],
        "seq": [3, 5, 7]}


def test_book_snapshots_rebuilt_from_full_books_and_changes():
    venue = get_venue("alpaca")
    full = (b'[{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:50.79613221Z","b":[{"p":100,"s":1},'
            b'{"p":99,"s":2}],"a":[{"p":101,"s":3}],"r":true}]')
    change = (b'[{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:51Z","b":[{"p":100,"s":0}],'
              b'"a":[{"p":102,"s":4}]}]')
    again = (b'[{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:52Z","b":[{"p":98,"s":5}],'
             b'"a":[{"p":103,"s":6}],"r":true}]')
    normalizer = Normalizer(venue, "book_snapshots", depth=2)
    batch = frames_batch(venue, [(["orderbooks"], f, "text", "in") for f in (full, change, again)])
    out = plain(pa.Table.from_batches([normalizer.feed(batch), normalizer.finish()])
                .combine_chunks().to_batches()[0])
    assert out["seq"] == [1, 2, 3] and normalizer.unmapped == 0
    assert (out["bid_0_px"], out["bid_0_sz"], out["bid_1_px"]) == ([100, 99, 98], [1, 2, 5],
                                                                    [99, None, None])
    assert (out["ask_0_px"], out["ask_1_px"], out["ask_1_sz"]) == ([101, 101, 103],
                                                                    [None, 102, None],
                                                                    [None, 4, None])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("msgpack_mode", [False, True])
def test_what_the_simulator_sends_normalizes_completely(data, msgpack_mode):
    params = {"feed": "crypto", **({"msgpack": "true"} if msgpack_mode else {})}
    _, _, session = record_from_sim(
        "alpaca", data, sim=SimOptions(rate=400), symbols=["BTC/USD", "ETH/USD"],
        channels=["trades", "quotes", "bars", "orderbooks"], params=params)
    venue = get_venue("alpaca")
    columns = ["seq", "ts", "stream", "conn", "dir", "kind", "channel", "channels", "payload"]
    batches = []
    for b in session.batches(columns=columns):
        times = venue.exch_ts(b.column("payload"), b.column("kind"))
        batches.append(pa.RecordBatch.from_arrays([*b.columns, times], columns + ["exch_ts"]))
    inbound = [b.filter(pc.equal(b.column("dir"), "in")) for b in batches]
    kinds = {k for b in inbound for k in b.column("kind").to_pylist()}
    assert kinds == {"binary" if msgpack_mode else "text"}
    control = pa.array(["success", "subscription", "error"])
    data_frames = [b.filter(pc.invert(pc.is_in(b.column("channel"), control))) for b in inbound]
    assert sum(b.num_rows for b in data_frames) > 0
    assert all(b.column("exch_ts").null_count == 0 for b in data_frames)
    for table in ("trades", "quotes", "bars", "book_changes", "book_snapshots:5"):
        name = table.split(":")[0]
        normalizer = Normalizer(venue, name, **({"depth": 5} if ":" in table else {}))
        out = [normalizer.feed(b) for b in batches] + [normalizer.finish()]
        assert sum(b.num_rows for b in out) > 0, table
        assert normalizer.unmapped == 0 and normalizer.mapped > 0, table
    sides = {s for b in batches for s in Normalizer(venue, "trades").feed(b).column(
        "side").to_pylist()}
    assert sides <= {"buy", "sell"} and sides
