"""Alpaca's protocol logic against literal frames from venue-docs (no sockets)."""

import json

import msgpack
import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.alpaca import AlpacaStream


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
    assert isinstance(venue.streams(Request(symbols=["X"], sim=True, env={}))[0], AlpacaStream)
