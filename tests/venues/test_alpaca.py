"""Alpaca's protocol logic against literal frames from venue-docs (no sockets)."""

import json

import msgpack
import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.alpaca import (AlpacaServer, AlpacaStream, decode_msgpack, packed_item,
                                 rfc3339, text_item)


def stream(**params):
    req = Request(symbols=params.pop("symbols", ["AAPL"]), channels=params.pop("channels", []),
                  params=params, env={"APCA_API_KEY_ID": "AKID", "APCA_API_SECRET_KEY": "SEKRIT"})
    [s] = get_venue("alpaca").streams(req)
    return s


def test_opening_exchange_with_the_docs_frames():
    s = stream(symbols=["AMD", "CLDR"], channels=["trades", "quotes"])
    assert s.url == "wss://stream.data.alpaca.markets/v2/iex"
    assert s.opening() == []  # the client waits for the welcome
    ch, sy, step = s.receive(b'[{"T":"success","msg":"connected"}]', True)
    assert ch == ("success",) and json.loads(step.send[0]) == {
        "action": "auth", "key": "AKID", "secret": "SEKRIT"}
    ch, sy, step = s.receive(b'[{"T":"success","msg":"authenticated"}]', True)
    assert json.loads(step.send[0]) == {"action": "subscribe", "trades": ["AMD", "CLDR"],
                                        "quotes": ["AMD", "CLDR"]}
    ack = (b'[{"T":"subscription","trades":["AAPL"],"quotes":["AMD","CLDR"],"bars":["*"],'
           b'"updatedBars":[],"dailyBars":[],"statuses":[],"lulds":[],"corrections":["AAPL"],'
           b'"cancelErrors":["AAPL"]}]')
    ch, sy, step = s.receive(ack, True)
    assert ch == ("subscription",) and step.ready and sy == ()
    assert s.secrets() == ["AKID", "SEKRIT"]


def test_fakepaca_defaults_to_the_test_feed():
    s = stream(symbols=["FAKEPACA"])
    assert s.url.endswith("/v2/test")
    assert json.loads(s.subscribe_message()) == {
        "action": "subscribe", "trades": ["FAKEPACA"], "quotes": ["FAKEPACA"],
        "bars": ["FAKEPACA"]}


@pytest.mark.parametrize("frame,channels,symbols", [
    (b'[{"T":"t","S":"AAPL","i":628,"x":"K","p":162.92,"s":3,"c":["@","F","T","I"],"z":"C",'
     b'"t":"2023-04-06T11:54:26.838232225Z"}]', ("trades",), ("AAPL",)),
    (b'[{"T":"q","S":"FAKEPACA","bx":"O","bp":133.85,"bs":4,"ax":"R","ap":135.77,"as":5,'
     b'"c":["R"],"z":"A","t":"2024-07-24T07:56:53.639713735Z"}]', ("quotes",), ("FAKEPACA",)),
    (b'[{"T":"b","S":"FAKEPACA","o":132.65,"h":136,"l":132.12,"c":134.65,"v":205,'
     b'"t":"2024-07-24T07:56:00Z","n":16,"vw":133.7}]', ("bars",), ("FAKEPACA",)),
    (b'[{"T":"t","S":"AAPL","p":1},{"T":"q","S":"MSFT","bp":2},{"T":"t","S":"AAPL","p":3}]',
     ("trades", "quotes"), ("AAPL", "MSFT")),
    (b'[{"T":"n","id":1,"headline":"h","symbols":["AAPL","TSLA"],"source":"benzinga"}]',
     ("news",), ("AAPL", "TSLA")),
])
def test_classification(frame, channels, symbols):
    ch, sy, step = stream().receive(frame, True)
    assert (ch, sy, step) == (channels, symbols, None)


@pytest.mark.parametrize("code,fatal", [(402, True), (406, True), (409, True), (410, True),
                                        (411, True), (412, True), (405, True), (400, True),
                                        (401, False), (404, False), (407, False), (500, False)])
def test_errors(code, fatal):
    frame = b'[{"T":"error","code":%d,"msg":"x"}]' % code
    ch, _, step = stream().receive(frame, True)
    assert ch == ("error",)
    assert (step.fatal is not None) == fatal and (step.retry is not None) == (not fatal)
    assert str(code) in (step.fatal or step.retry)


def test_msgpack_frames_with_timestamp_extension():
    s = stream(feed="opra", symbols=["AAPL240119C00190000"])
    assert s.binary_in and s.headers["Content-Type"] == "application/msgpack"
    frame = msgpack.packb([{"T": "t", "S": "AAPL240119C00190000", "p": 1.5,
                            "t": msgpack.Timestamp.from_unix_nano(1_700_000_000_123_456_789)},
                           {"T": "q", "S": "X", "bp": 1}])
    ch, sy, step = s.receive(frame, False)
    assert ch == ("trades", "quotes") and sy == ("AAPL240119C00190000", "X") and step is None
    ch, _, step = s.receive(msgpack.packb([{"T": "success", "msg": "connected"}]), False)
    assert ch == ("success",) and step.send


def test_header_auth():
    s = stream(auth="headers")
    assert s.headers["APCA-API-KEY-ID"] == "AKID"
    _, _, step = s.receive(b'[{"T":"success","msg":"connected"}]', True)
    assert step is None  # no auth message: the server authenticates from the headers


def test_usage_errors():
    venue = get_venue("alpaca")
    with pytest.raises(UsageError, match="APCA_API_KEY_ID"):
        venue.streams(Request(symbols=["AAPL"], env={}))
    with pytest.raises(UsageError, match="APCA_API_SECRET_KEY"):
        venue.streams(Request(symbols=["AAPL"], env={"APCA_API_KEY_ID": "k"}))
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    with pytest.raises(UsageError, match="unknown feed"):
        venue.streams(Request(symbols=["A"], params={"feed": "nasdaq"}, env=env))
    with pytest.raises(UsageError, match="has no channel"):
        venue.streams(Request(symbols=["A"], channels=["news"], env=env))
    with pytest.raises(UsageError, match="symbol limit of 30"):
        venue.streams(Request(symbols=[f"S{i}" for i in range(31)], env=env))
    assert venue.streams(Request(symbols=[f"S{i}" for i in range(31)],
                                 params={"symbol_limit": "100"}, env=env))
    with pytest.raises(UsageError, match="--symbols"):
        venue.streams(Request(env=env))
    assert isinstance(venue.streams(Request(symbols=["X"], env=env))[0], AlpacaStream)


# -- the server side ---------------------------------------------------------------------------

def server(path="/v2/iex", headers=None, **kw):
    s = AlpacaServer(path, headers or {}, **kw)
    s.start()
    return s


def replies(s):
    return [json.loads(p) if text else msgpack.unpackb(p) for p, text in s.take()]


def authed(path="/v2/iex", **kw):
    s = server(path, **kw)
    s.receive('{"action":"auth","key":"k","secret":"s"}')
    assert replies(s)[-1] == [{"T": "success", "msg": "authenticated"}]
    return s


def test_server_handshake_and_the_whole_set_in_every_ack():
    s = server()
    assert replies(s) == [[{"T": "success", "msg": "connected"}]] and not s.ready
    s.receive('{"action":"auth","key":"k","secret":"s"}')
    s.receive('{"action":"subscribe","trades":["AAPL"],"quotes":["AMD","CLDR"],"bars":["*"]}')
    assert replies(s)[-1] == [{"T": "subscription", "trades": ["AAPL"],
                               "quotes": ["AMD", "CLDR"], "bars": ["*"], "updatedBars": [],
                               "dailyBars": [], "statuses": [], "lulds": [],
                               "corrections": ["AAPL"], "cancelErrors": ["AAPL"]}]
    assert s.ready
    s.receive('{"action":"unsubscribe","quotes":["AMD"]}')
    assert replies(s)[-1][0]["quotes"] == ["CLDR"]


def test_server_feed_from_the_path():
    s = authed("/v1beta3/crypto/us")
    s.receive('{"action":"subscribe","orderbooks":["BTC/USD"]}')
    ack = replies(s)[-1][0]
    assert set(ack) == {"T", "trades", "quotes", "bars", "updatedBars", "dailyBars",
                        "orderbooks"} and ack["orderbooks"] == ["BTC/USD"]
    s = authed("/v2/sip")
    s.receive('{"action":"subscribe","orderbooks":["AAPL"]}')   # not a stock channel
    assert replies(s)[-1] == [{"T": "error", "code": 410,
                               "msg": "invalid subscribe action for this feed"}]
    s = authed("/v1beta1/news")
    s.receive('{"action":"subscribe","news":["*"]}')
    assert replies(s)[-1] == [{"T": "subscription", "news": ["*"]}]
    s = server("/v1beta1/opra")   # option feeds speak msgpack only
    assert replies(s)[-1] == [{"T": "error", "code": 412, "msg":
                               "option messages are only available in MsgPack format"}]
    assert s.close == (1008, "option messages are only available in MsgPack format")
    assert AlpacaServer.refuse("/v2/test") is None and AlpacaServer.refuse("/v9/x")


@pytest.mark.parametrize("messages,code", [
    (['{"action":"subscribe","trades":["X"]}'], 401),
    (["not json"], 400),
    (['{"action":"auth","key":"k","secret":"s"}'] * 2, 403),
    (['{"action":"auth","key":"k","secret":"s"}', '{"action":"subscribe","trades":"AAPL"}'],
     400),
    (['{"action":"auth","key":"k","secret":"s"}',
      '{"action":"subscribe","trades":["bad symbol!"]}'], 400),
])
def test_server_errors_change_nothing(messages, code):
    s = server("/v2/test")
    for m in messages:
        s.receive(m)
    assert replies(s)[-1][0]["code"] == code and s.subs == {} and s.close is None


def test_server_auth_headers_limits_and_refused_credentials():
    s = server(headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"})
    assert replies(s)[-1] == [{"T": "success", "msg": "authenticated"}]
    s = server(headers={"APCA-API-KEY-ID": "", "APCA-API-SECRET-KEY": ""})
    assert replies(s)[-1][0]["code"] == 402 and s.close
    s = authed(symbol_limit=2)
    s.receive('{"action":"subscribe","trades":["A","B","C"]}')
    assert replies(s)[-1][0]["code"] == 405
    s = server()
    s.accept = lambda key, secret: key == "right"
    s.receive('{"action":"auth","key":"wrong","secret":"s"}')
    assert replies(s)[-1] == [{"T": "error", "code": 402, "msg": "auth failed"}] and s.close


def test_server_renders_arrays_for_the_subscription_and_the_format():
    s = authed()
    s.receive('{"action":"subscribe","trades":["AAPL"]}')
    s.take()
    frame = (b'[{"T":"t","S":"AAPL","i":628,"x":"K","p":162.92,"s":3,"c":["@","F","T","I"],'
             b'"z":"C","t":"2023-04-06T11:54:26.838232225Z"},{"T":"q","S":"AAPL","bp":1}]')
    [(payload, text)] = s.render(frame, True, ["trades", "quotes"], ["AAPL"])
    assert text and json.loads(payload) == [json.loads(frame)[0]]
    assert s.render(frame, True, ["quotes"], ["AAPL"]) == []
    packed = AlpacaServer("/v2/iex", {"Content-Type": "application/msgpack"})
    packed.subs = {"trades": {"*"}}
    [(payload, text)] = packed.render(frame, True, ["trades", "quotes"], ["AAPL"])
    item = msgpack.unpackb(payload, timestamp=0)[0]
    assert not text and item["t"] == msgpack.Timestamp.from_unix_nano(1680782066838232225)


def test_timestamps_both_ways():
    ts = msgpack.Timestamp.from_unix_nano(1721807813639713735)
    assert rfc3339(ts) == "2024-07-24T07:56:53.639713735Z"
    assert text_item({"T": "q", "t": ts}) == {"T": "q", "t": "2024-07-24T07:56:53.639713735Z"}
    assert packed_item({"T": "q", "t": "2024-07-24T07:56:53.639713735Z"})["t"] == ts
    assert packed_item({"T": "n", "created_at": 1721807813639713735})["created_at"] == ts
    assert decode_msgpack(msgpack.packb([{"t": ts}]))[0]["t"] == ts


def test_server_offering_part_of_the_feed_refuses_the_rest_as_alpaca_does():
    s = authed("/v2/test", offered=Request(symbols=["FAKEPACA"], channels=["trades", "quotes"]))
    s.receive('{"action":"subscribe","trades":["FAKEPACA"],"quotes":["FAKEPACA"]}')
    [[ack]] = replies(s)
    assert ack["trades"] == ["FAKEPACA"] and ack["corrections"] == ["FAKEPACA"]
    s.receive('{"action":"subscribe","bars":["FAKEPACA"]}')   # a channel not carried
    assert replies(s) == [[{"T": "error", "code": 410,
                            "msg": "invalid subscribe action for this feed"}]]
    for asked in ('["AAPL"]', '["*"]', '["FAKEPACA","AAPL"]'):   # symbols not carried
        s.receive('{"action":"subscribe","quotes":%s}' % asked)
        assert replies(s) == [[{"T": "error", "code": 409, "msg": "insufficient subscription"}]]
    s.receive('{"action":"subscribe","cancelErrors":["FAKEPACA"]}')   # comes with trades
    assert replies(s)[0][0]["T"] == "subscription"
    s.receive('{"action":"unsubscribe","quotes":["AAPL"]}')   # unsubscribing is never refused
    assert replies(s)[0][0]["quotes"] == ["FAKEPACA"]
    assert s.subs["trades"] == {"FAKEPACA"}
    every = authed("/v2/iex", offered=Request(symbols=["*"], channels=["trades"]))
    every.receive('{"action":"subscribe","trades":["AAPL","*"]}')
    assert replies(every)[0][0]["trades"] == ["*", "AAPL"]


def test_server_signature_is_equal_for_equal_subscriptions():
    a, b = authed(), authed()
    for s in (a, b):
        s.receive('{"action":"subscribe","trades":["AAPL"]}')
    assert a.signature() == b.signature()
    b.receive('{"action":"subscribe","quotes":["AAPL"]}')
    assert a.signature() != b.signature()
