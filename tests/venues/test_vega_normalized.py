"""Vega's normalized tables, exchange times and depth sequence checks, from literal frames
in the data node's JSON (the shapes of venue-docs/vega.md and of the data node's protos:
camelCase keys, enums as integers, int64 values as strings, zero values left out)."""

import json

import pyarrow as pa
import pytest

from wsrec.venues import get_venue
from wsrec.venues.normalize import Normalizer, schema
from normalized_frames import frames_batch

M = "0570e3ba31dda99bcaa78cf7c32fe97f3ec93c7a87ae6efd41fc524defa1bef2"
M2 = "2a9a5c2d1e4f2b2f5d6e9a0c4f8b7a6d5c4b3a2918171615141312111009080f"
T0 = 1_697_590_000_000_000_000

# the ledger movement of venue-docs/vega.md, as one line
LEDGER = (b'{"result":{"ledgerMovement":{"entries":[{"fromAccount":{"assetId":"fBTC","type":7,'
          b'"marketId":"' + M.encode() + b'"},"toAccount":{"assetId":"fBTC","type":4,"owner":'
          b'"ee023a39d8c76b7c32b235f4620fb50cae2af3068368979c41eaeb519ce8d3fd"},"amount":"30",'
          b'"type":10,"timestamp":"1679568591503926199","fromAccountBalance":"31",'
          b'"toAccountBalance":"3999823695"}],"balances":[{"account":{"assetId":"fBTC","type":4,'
          b'"owner":"ee023a39d8c76b7c32b235f4620fb50cae2af3068368979c41eaeb519ce8d3fd"},'
          b'"balance":"30"}]}}}')
TRADES = (b'{"result":{"trades":[{"id":"374eefc4c872845df70d5302fe3953b35004371ca42364d962e80'
          b'4ff063be817","marketId":"' + M.encode() + b'","price":"2816712999","size":"350",'
          b'"buyer":"8ec6674d038f0a19870d2ebab358cd1a7e928e0b7806dfcb791d5143bf8ffad4","seller":'
          b'"f882e93e63ea662b9ddee6b61de17345d441ade06475788561e6d470bebc9ece","aggressor":2,'
          b'"buyOrder":"31e8","sellOrder":"1655","timestamp":"1697590811501334000","type":1,'
          b'"buyerFee":{"makerFee":"0","infrastructureFee":"0","liquidityFee":"0"},"sellerFee":'
          b'{"makerFee":"11831","infrastructureFee":"29576","liquidityFee":"5916"}},'
          b'{"id":"7950","marketId":"' + M.encode() + b'","price":"2816612999","size":"2085",'
          b'"buyer":"8ec6","seller":"f882","aggressor":1,"timestamp":"1697590811501335000",'
          b'"type":1},'
          b'{"id":"1c76","marketId":"' + M.encode() + b'","price":"2816600000","size":"5",'
          b'"buyer":"8ec6","seller":"f882","timestamp":"1697590811501336000","type":1}]}}')
MARKET_DATA = (b'{"result":{"marketData":[{"markPrice":"2904342","bestBidPrice":"2904340",'
               b'"bestBidVolume":"173","bestOfferPrice":"2904342","bestOfferVolume":"174",'
               b'"bestStaticBidPrice":"2901437","bestStaticBidVolume":"523","midPrice":"2904341",'
               b'"market":"' + M.encode() + b'","timestamp":"1697220852016362000",'
               b'"openInterest":"14787","marketTradingMode":1,"priceMonitoringBounds":[{'
               b'"minValidPrice":"2866233","maxValidPrice":"2942770","trigger":{"horizon":"900",'
               b'"probability":"0.90001","auctionExtension":"60"},"referencePrice":"2904342"}],'
               b'"marketState":5,"nextMarkToMarket":"1697220853545737884"},'
               b'{"markPrice":"100","bestBidPrice":"0","bestOfferPrice":"105",'
               b'"bestOfferVolume":"2","market":"' + M2.encode() + b'",'
               b'"timestamp":"1697220852016363000"}]}}')
DEPTH = (b'{"result":{"marketDepth":[{"marketId":"' + M.encode() + b'","buy":[{"price":'
         b'"2816912999","numberOfOrders":"1","volume":"330"},{"price":"2816812999",'
         b'"numberOfOrders":"2","volume":"1545"}],"sell":[{"price":"2817247085","numberOfOrders":'
         b'"1","volume":"278"},{"price":"2817347085","numberOfOrders":"1","volume":"1543",'
         b'"ammVolume":"10"}],"sequenceNumber":"1697590437480112072"}]}}')
UPDATE = (b'{"result":{"update":[{"marketId":"' + M.encode() + b'","sell":[{"price":"2817247085"},'
          b'{"price":"2817747085","numberOfOrders":"1","volume":"833"}],"sequenceNumber":'
          b'"1697590646276860086","previousSequenceNumber":"1697590437480112072"}]}}')
UPDATE_AFTER_GAP = (b'{"result":{"update":[{"marketId":"' + M.encode() + b'","buy":[{"price":'
                    b'"2816912999","numberOfOrders":"1","volume":"300"}],"sequenceNumber":'
                    b'"1697590700000000001","previousSequenceNumber":"1697590690000000005"}]}}')
CANDLE = (b'{"result":{"candle":{"start":"1697590800000000000","lastUpdate":'
          b'"1697590811501334000","high":"2817000000","low":"2816600000","open":"2816900000",'
          b'"close":"2816612999","volume":"2435","notional":"6858"}}}')
ORDER = (b'{"result":{"updates":{"orders":[{"id":"ID","marketId":"' + M.encode() + b'","side":1,'
         b'"price":"2963260914","size":"100","remaining":"100","timeInForce":1,"type":1,'
         b'"createdAt":"1697838030349919000","status":1,"version":"1","batchId":"1"}]}}}')


@pytest.fixture
def vega():
    return get_venue("vega")


def rows(venue, table, payload, state=None):
    return list(venue.normalize(table, json.loads(payload), None, {} if state is None
                                else state))


def test_exchange_times(vega):
    payloads = [LEDGER, TRADES, MARKET_DATA, CANDLE, ORDER, DEPTH, b'{"error":{"code":3}}']
    got = vega.exch_ts(pa.array(payloads, pa.binary()), pa.array(["text"] * len(payloads)))
    assert got.cast(pa.int64()).to_pylist() == [
        1679568591503926199, 1697590811501334000, 1697220852016362000,
        1697590811501334000,   # a candle: its last update
        1697838030349919000,   # an order: createdAt (no updatedAt yet)
        None, None]            # market depth carries no time


def test_trades_side_is_the_aggressor(vega):
    assert rows(vega, "trades", TRADES) == [
        (1697590811501334000, M, "374eefc4c872845df70d5302fe3953b35004371ca42364d962e804ff063be817",
         "sell", 2816712999.0, 350.0),
        (1697590811501335000, M, "7950", "buy", 2816612999.0, 2085.0),
        (1697590811501336000, M, "1c76", "unknown", 2816600000.0, 5.0)]   # an auction's


def test_quotes_from_market_data(vega):
    assert rows(vega, "quotes", MARKET_DATA) == [
        (1697220852016362000, M, 2904340.0, 173.0, 2904342.0, 174.0),
        (1697220852016363000, M2, None, None, 105.0, 2.0)]   # no bids: price "0", no volume


def test_book_changes_whole_books_and_updates(vega):
    state: dict = {}
    assert rows(vega, "book_changes", DEPTH, state) == [
        (None, M, True, "bid", 2816912999.0, 330.0), (None, M, True, "bid", 2816812999.0, 1545.0),
        (None, M, True, "ask", 2817247085.0, 278.0), (None, M, True, "ask", 2817347085.0, 1543.0)]
    assert rows(vega, "book_changes", UPDATE, state) == [
        (None, M, False, "ask", 2817247085.0, 0.0),     # no volume: the level is gone
        (None, M, False, "ask", 2817747085.0, 833.0)]
    # an update no newer than what was applied is skipped: a repeat, or older than the book
    assert rows(vega, "book_changes", UPDATE, state) == []
    assert rows(vega, "book_changes", DEPTH, state) == []
    # after a gap, updates still apply
    assert rows(vega, "book_changes", UPDATE_AFTER_GAP, state) == [
        (None, M, False, "bid", 2816912999.0, 300.0)]
    assert rows(vega, "book_changes", b'{"result":{}}') == []   # nothing changed


def test_bars_from_candles(vega):
    assert rows(vega, "bars", CANDLE) == [
        (1697590800000000000, None, None, 2816900000.0, 2817000000.0, 2816600000.0,
         2816612999.0, 2435.0, None)]


@pytest.mark.parametrize("table,payload", [
    ("trades", b'{"result":{"marketDepth":[]}}'),              # another stream's shape
    ("trades", b'{"result":{"trades":[{"id":"1","marketId":"a","price":"x","size":"1"}]}}'),
    ("quotes", b'{"result":{"marketData":[{"bestBidPrice":"1","bestBidVolume":"2"}]}}'),
    ("book_changes", b'{"result":{"update":[{"marketId":"a","buy":[{"volume":"1"}]}]}}'),
    ("book_changes", b'{"result":{"marketDepth":{"marketId":"a"}}}'),
    ("bars", b'{"result":{"candle":{"start":"1","open":"1"}}}'),
    ("bars", b'{"result":{}}'),
    ("trades", b'[1]'),
])
def test_frames_that_cannot_be_mapped_raise(vega, table, payload):
    with pytest.raises((KeyError, ValueError, TypeError, AttributeError)):
        rows(vega, table, payload)


def gaps(venue, payloads):
    state: dict = {}
    return [gap for p in payloads for gap in venue.check_sequence(json.loads(p), None, state)]


def update(seq, prev, market=M):
    return (b'{"result":{"update":[{"marketId":"%s","buy":[{"price":"1","volume":"1"}],'
            b'"sequenceNumber":"%d","previousSequenceNumber":"%d"}]}}' % (market.encode(), seq,
                                                                          prev))


def test_depth_update_chains():
    vega = get_venue("vega")
    assert gaps(vega, [update(103, 90), update(105, 103), update(109, 105)]) == []
    assert gaps(vega, [update(103, 90), update(110, 105)]) == [
        (f"market {M}: update previousSequenceNumber 105, last sequenceNumber 103", 1)]
    assert gaps(vega, [update(103, 90), update(105, 103), update(105, 103)]) == [
        (f"market {M}: update sequenceNumber 105 after 105", 1)]
    # markets are chained apart
    assert gaps(vega, [update(103, 90), update(7, 3, M2), update(105, 103), update(9, 7, M2)]) == []


def test_whole_books_restart_the_chain():
    vega = get_venue("vega")
    depth = b'{"result":{"marketDepth":[{"marketId":"%s","sequenceNumber":"%d"}]}}'
    # an update covered by the book (or begun before it) is no gap
    assert gaps(vega, [depth % (M.encode(), 105), update(105, 103), update(108, 104),
                       update(110, 108)]) == []
    assert gaps(vega, [update(103, 90), depth % (M.encode(), 120), update(125, 121)]) == [
        (f"market {M}: update previousSequenceNumber 121, last sequenceNumber 120", 1)]
    assert gaps(vega, [depth % (M.encode(), 120), depth % (M.encode(), 110)]) == [
        (f"market {M}: depth sequenceNumber 110 after 120", 1)]
    assert gaps(vega, [DEPTH, UPDATE, UPDATE_AFTER_GAP]) == [
        (f"market {M}: update previousSequenceNumber 1697590690000000005, last sequenceNumber "
         f"1697590646276860086", 1)]
    # frames without sequence numbers, and others, are not checked
    assert gaps(vega, [b'{"result":{"update":[{"marketId":"a"}]}}', TRADES, LEDGER,
                       b'{"error":{"code":3}}', b'{"result":{"update":[{"marketId":"a"}]}}']) == []
    assert set(vega.sequenced) == {"markets/depth", "markets/depth/updates"}


def test_normalizer_end_to_end(vega):
    batch = frames_batch(vega, [("trades", TRADES), ("markets/data", MARKET_DATA),
                                ("trades", b'{"result":{"trades":[{"id":"x"}]}}'),
                                ("ledger/movements", LEDGER), ("trades", b'{"result":{}}')],
                         stream=None)
    n = Normalizer(vega, "trades")
    out = n.feed(batch)
    assert out.schema == schema("trades") and out.num_rows == 3
    assert (n.mapped, n.unmapped, n.unmapped_seqs) == (2, 1, [3])
    assert out.column("exch_ts").cast(pa.int64()).to_pylist() == [
        1697590811501334000, 1697590811501335000, 1697590811501336000]
    assert out.column("side").to_pylist() == ["sell", "buy", "unknown"]
    assert out.column("seq").to_pylist() == [1, 1, 1]
    assert set(out.column("venue").to_pylist()) == {"vega"}

    books = Normalizer(vega, "book_snapshots", depth=2)
    out = books.feed(frames_batch(vega, [("markets/depth", DEPTH),
                                         ("markets/depth/updates", UPDATE)], stream=None))
    out = pa.Table.from_batches([out, books.finish()])
    assert books.unmapped == 0 and out.num_rows == 2
    last = out.drop_columns(["local_ts", "exch_ts"]).to_pylist()[-1]
    assert (last["bid_0_px"], last["bid_0_sz"], last["ask_0_px"], last["ask_0_sz"]) == (
        2816912999.0, 330.0, 2817347085.0, 1543.0)
    assert (last["ask_1_px"], last["ask_1_sz"]) == (2817747085.0, 833.0)


@pytest.mark.timeout(60)
def test_recorded_from_the_simulator_normalizes_completely(data):
    from conftest import record_from_sim
    from wsrec.record.recorder import RecordOptions

    channels = ["trades", "markets/depth", "markets/depth/updates", "markets/data",
                "candle/data"]
    _, _, session = record_from_sim("vega", data, channels=channels,
                                    params={"candleId": f"trades_candle_1_minute_{M}"},
                                    options=RecordOptions(duration=0.6))
    vega = get_venue("vega")
    columns = Normalizer(vega, "trades").columns
    batches = list(session.batches(columns=columns))
    for table in ("trades", "quotes", "book_changes", "bars"):
        n = Normalizer(vega, table)
        got = sum(n.feed(b).num_rows for b in batches)
        assert got > 0 and n.mapped > 0 and n.unmapped == 0, table
    assert all(t is not None for b in batches for t, c in
               zip(b.column("exch_ts").cast(pa.int64()).to_pylist(),
                   b.column("channel").to_pylist())
               if c in ("trades", "markets/data", "candle/data"))
    states: dict = {}   # per connection
    for b in batches:
        for payload, channel, conn in zip(*(b.column(c).to_pylist()
                                            for c in ("payload", "channel", "conn"))):
            if channel in vega.sequenced:
                state = states.setdefault(conn, {})
                assert list(vega.check_sequence(json.loads(payload), channel, state)) == []
    bars = pa.Table.from_batches(list(session.normalized("bars")))
    assert bars.num_rows > 0
    assert set(bars.column("symbol").to_pylist()) == {M}
    assert set(bars.column("interval").to_pylist()) == {"1m"}


def test_candle_market_and_interval_come_from_the_connection_url(vega):
    from wsrec.venues.vega import _candle_of
    assert _candle_of(f"wss://x/api/v2/stream/candle/data?candleId=trades_candle_15_minutes_{M}"
                      ) == (M, "15m")
    assert _candle_of(f"wss://x/candle/data?candleId=trades_candle_1_day_{M}") == (M, "1d")
    assert _candle_of("wss://x/candle/data?candleId=other") == (None, None)
    assert _candle_of(None) == (None, None)
    n = Normalizer(vega, "bars")
    n.connection("candle/data", 0, f"wss://x/candle/data?candleId=trades_candle_1_hour_{M}")
    out = n.feed(frames_batch(vega, [("candle/data", CANDLE)], stream=None))
    assert (out.column("symbol").to_pylist(), out.column("interval").to_pylist()) == (
        [M], ["1h"])
