"""Vega's protocol logic against literal frames (no sockets)."""

import json

import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.vega import VegaServer

M = "0570e3ba31dda99bcaa78cf7c32fe97f3ec93c7a87ae6efd41fc524defa1bef2"
M2 = "ab" * 32


def streams(channels, symbols=(), **params):
    return get_venue("vega").streams(Request(channels=channels, symbols=list(symbols),
                                             params=params))


def test_one_connection_per_path_with_query_filters():
    a, b = streams(["trades", "orders"], symbols=[M, M2], partyIds="p1,p2")
    assert a.url == (f"wss://api.n07.testnet.vega.xyz/api/v2/stream/trades?marketIds={M}"
                     f"&marketIds={M2}&partyIds=p1&partyIds=p2")
    assert b.url.startswith("wss://api.n07.testnet.vega.xyz/api/v2/stream/orders?marketIds=")
    assert a.opening() == [] and a.heartbeat() is None
    [c] = streams(["positions"], symbols=[M])
    assert c.url.endswith(f"/positions?marketId={M}")
    [d] = streams(["ledger/movements"])
    assert d.url == "wss://api.n07.testnet.vega.xyz/api/v2/stream/ledger/movements"


def test_url_override_keeps_the_path():
    [s] = get_venue("vega").streams(Request(channels=["trades"], url="ws://127.0.0.1:9"))
    assert s.url == "ws://127.0.0.1:9/api/v2/stream/trades"


def test_classification_and_snapshot_pages():
    [s] = streams(["orders"])
    page = b'{"result":{"snapshot":{"orders":[{"id":"1","marketId":"%s"}]}}}' % M.encode()
    assert s.receive(page, True) == (("orders",), (M,), None)
    last = b'{"result":{"snapshot":{"orders":[],"lastPage":true}}}'
    assert s.receive(last, True)[2].ready
    movement = (b'{"result":{"ledgerMovement":{"entries":[{"fromAccount":{"assetId":"fBTC",'
                b'"type":7,"marketId":"%s"},"amount":"30"}]}}}' % M.encode())
    assert s.receive(movement, True)[1] == (M,)


def test_market_data_is_classified_by_its_market():
    [s] = streams(["markets/data"])
    frame = (b'{"result":{"marketData":[{"markPrice":"2904342","bestBidPrice":"2904340",'
             b'"market":"%s","timestamp":"1697220852016362000"}]}}' % M.encode())
    assert s.receive(frame, True) == (("markets/data",), (M,), None)


def test_errors():
    [s] = streams(["trades"])
    step = s.receive(b'{"error":{"code":3,"message":"bad filter","details":[]}}', True)[2]
    assert step.fatal and "bad filter" in step.fatal
    step = s.receive(b'{"error":{"code":14,"message":"unavailable"}}', True)[2]
    assert step.retry and not step.fatal


def test_usage_errors():
    with pytest.raises(UsageError, match="takes no market filter"):
        streams(["ledger/movements"], symbols=[M])
    with pytest.raises(UsageError, match="single market"):
        streams(["positions"], symbols=[M, M])
    with pytest.raises(UsageError, match="candleId"):
        streams(["candle/data"])
    with pytest.raises(UsageError, match="unknown channel"):
        streams(["nope"])
    with pytest.raises(UsageError, match="'BTC/USDT-PERP' is not a market id"):
        streams(["trades"], symbols=[M, "BTC/USDT-PERP"])


def test_a_market_name_goes_only_to_a_server_given_by_url():
    """The venue knows markets by id; the simulator (or another local server) by name too."""
    [s] = get_venue("vega").streams(Request(channels=["trades"], symbols=["BTC/USDT-PERP"],
                                            url="ws://127.0.0.1:9"))
    assert s.url == "ws://127.0.0.1:9/api/v2/stream/trades?marketIds=BTC%2FUSDT-PERP"


# -- the server side ---------------------------------------------------------------------------

M1, M2 = "a" * 64, "b" * 64


def test_server_path_and_query_pick_the_stream():
    s = VegaServer(f"/api/v2/stream/trades?marketIds={M1}")
    s.start()
    assert s.take() == [] and s.ready and s.close is None
    frame = b'{"result":{"trades":[{"marketId":"%s","price":"1"}]}}' % M1.encode()
    assert s.render(frame, True, ["trades"], [M1]) == [(frame, True)]
    assert s.render(frame, True, ["trades"], [M2]) == []
    assert s.render(frame, True, ["orders"], [M1]) == []
    s.receive("anything")   # the venue takes no client messages
    assert s.take() == []
    assert VegaServer.refuse("/api/v2/stream/markets/depth") is None
    assert VegaServer.refuse("/api/v2/stream/nope")


@pytest.mark.parametrize("path,message", [
    ("/api/v2/stream/trades?nope=1", "unknown filter nope"),
    ("/api/v2/stream/candle/data", "candleId is required")])
def test_server_bad_filters_end_the_stream(path, message):
    s = VegaServer(path)
    s.start()
    [(payload, _)] = s.take()
    assert json.loads(payload) == {"error": {"code": 3, "message": message, "details": [
        {"code": 10003, "message": message}]}}
    assert s.close == (1000, "")


@pytest.mark.parametrize("path,code,message", [
    ("orders", 5, "stream orders is not available on this server"),
    (f"trades?marketIds={M2}", 3, f"marketIds {M2} not available on this server"),
    ("trades", 3, "marketIds (all) not available on this server"),
    (f"trades?marketIds={M1}&partyIds=p", 3, "partyIds p not available on this server")])
def test_server_offering_part_refuses_the_rest_and_ends_the_stream(path, code, message):
    offered = Request(channels=["trades", "markets/data"], symbols=[M1])
    s = VegaServer(f"/api/v2/stream/{path}", offered=offered)
    s.start()
    [(payload, _)] = s.take()
    assert json.loads(payload) == {"error": {"code": code, "message": message, "details": [
        {"code": 10000 + code, "message": message}]}}
    assert s.close == (1000, "")


def test_server_offering_serves_what_it_carries():
    for path, offered in (
            (f"trades?marketIds={M1}", Request(channels=["trades"], symbols=[M1, M2])),
            (f"trades?marketIds={M2}", Request(channels=["trades"])),
            ("ledger/movements", Request(channels=["ledger/movements"]))):
        s = VegaServer(f"/api/v2/stream/{path}", offered=offered)
        s.start()
        assert s.take() == [] and s.close is None
