"""Hyperliquid's protocol logic against literal frames (no sockets)."""

import json

import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.hyperliquid import HyperliquidServer


def stream(channels=(), symbols=("SOL",), **params):
    [s] = get_venue("hyperliquid").streams(Request(channels=list(channels),
                                                   symbols=list(symbols), params=params))
    return s


def test_subscribe_messages_are_the_documented_ones():
    s = stream(channels=["trades"], symbols=["SOL"])
    assert s.url == "wss://api.hyperliquid.xyz/ws"
    assert [json.loads(m) for m in s.opening()] == [
        {"method": "subscribe", "subscription": {"type": "trades", "coin": "SOL"}}]
    assert s.heartbeat() == b'{"method":"ping"}'


def test_defaults_and_arguments():
    s = stream(symbols=["BTC", "ETH"])
    subs = [json.loads(m)["subscription"] for m in s.opening()]
    assert subs == [{"type": "trades", "coin": "BTC"}, {"type": "trades", "coin": "ETH"},
                    {"type": "l2Book", "coin": "BTC"}, {"type": "l2Book", "coin": "ETH"}]
    s = stream(channels=["candle", "allMids", "userFills"], symbols=["BTC"], user="0xabc",
               interval="5m", testnet="true")
    assert s.url == "wss://api.hyperliquid-testnet.xyz/ws"
    assert [json.loads(m)["subscription"] for m in s.opening()] == [
        {"type": "candle", "interval": "5m", "coin": "BTC"}, {"type": "allMids"},
        {"type": "userFills", "user": "0xabc"}]


def test_acks_make_it_ready_and_data_is_classified():
    s = stream(channels=["trades"], symbols=["SOL", "BTC"])
    s.opening()
    ack = (b'{"channel":"subscriptionResponse","data":{"method":"subscribe",'
           b'"subscription":{"type":"trades","coin":"SOL"}}}')
    assert s.receive(ack, True)[2] is None
    assert s.receive(ack, True)[2].ready
    trade = (b'{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"69170.0",'
             b'"sz":"0.00018","time":1787195046105,"hash":"0x00","tid":456615105517601,'
             b'"users":["0xf5d8","0x4d20"]}]}')
    assert s.receive(trade, True) == (("trades",), ("BTC",), None)
    book = (b'{"channel":"l2Book","data":{"coin":"BTC","time":1787195067883,"levels":'
            b'[[{"px":"69172.0","sz":"1.21098","n":5}],[{"px":"69173.0","sz":"8.45682","n":30}]]}}')
    assert s.receive(book, True) == (("l2Book",), ("BTC",), None)
    assert s.receive(b'{"channel":"pong"}', True)[0] == ("pong",)
    assert s.receive(b"Websocket connection established.", True) == ((), (), None)


def test_rejected_subscription_is_fatal_but_already_subscribed_is_not():
    s = stream()
    s.opening()
    _, _, step = s.receive(b'{"channel":"error","data":"Invalid subscription {\\"type\\":'
                           b'\\"trades\\"}: missing coin"}', True)
    assert step.fatal and "rejected a subscription" in step.fatal
    _, _, step = s.receive(b'{"channel":"error","data":"Already subscribed: {}"}', True)
    assert step is None or not step.fatal


def test_usage_errors():
    with pytest.raises(UsageError, match="needs coins"):
        stream(symbols=[])
    with pytest.raises(UsageError, match="needs --param user"):
        stream(channels=["userFills"])
    with pytest.raises(UsageError, match="unknown channel"):
        stream(channels=["nope"])
    with pytest.raises(UsageError, match="unknown interval"):
        stream(channels=["candle"], interval="7m")


# -- the server side ---------------------------------------------------------------------------

def answers(s, *messages):
    for m in messages:
        s.receive(m)
    return [json.loads(p) for p, _ in s.take()]


def test_server_acks_the_normalised_subscription_pongs_and_errors():
    s = HyperliquidServer("/ws")
    s.start()
    assert s.take() == [] and not s.ready
    assert answers(s, '{"method":"subscribe","subscription":{"type":"trades","coin":"SOL"}}') == [
        {"channel": "subscriptionResponse",
         "data": {"method": "subscribe", "subscription": {"type": "trades", "coin": "SOL"}}}]
    assert s.ready
    [ack] = answers(s, '{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}')
    assert ack["data"]["subscription"] == {"type": "l2Book", "coin": "BTC", "nSigFigs": None,
                                           "mantissa": None}
    assert answers(s, '{"method":"ping"}') == [{"channel": "pong"}]
    [dup] = answers(s, '{"method":"subscribe","subscription":{"type":"trades","coin":"SOL"}}')
    assert dup == {"channel": "error",
                   "data": 'Already subscribed: {"type":"trades","coin":"SOL"}'}
    [bad] = answers(s, "hello")
    assert bad == {"channel": "error",
                   "data": "Error parsing JSON into valid websocket request: hello"}
    [bad] = answers(s, '{"method":"subscribe","subscription":{"type":"candle","coin":"BTC",'
                       '"interval":"7m"}}')
    assert bad["data"].endswith(": invalid interval") and len(s.subs) == 2
    [post] = answers(s, '{"method":"post","id":7,"request":{"type":"info","payload":{}}}')
    assert post["data"]["id"] == 7 and post["data"]["response"]["type"] == "error"
    assert HyperliquidServer.refuse("/ws") is None and HyperliquidServer.refuse("/")


def test_server_renders_by_channel_and_coin():
    s = HyperliquidServer("/ws")
    answers(s, '{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}',
            '{"method":"subscribe","subscription":{"type":"userEvents","user":"0xab"}}')
    trade = (b'{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"69170.0",'
             b'"sz":"0.00018","time":1787195046105,"hash":"0x00","tid":1,"users":[]}]}')
    assert s.render(trade, True, ["trades"], ["BTC"]) == [(trade, True)]
    assert s.render(trade, True, ["trades"], ["ETH"]) == []
    assert s.render(b'{"channel":"user","data":{}}', True, ["user"], []) != []
    assert s.render(b'{"channel":"pong"}', True, ["pong"], []) == []


def test_server_offering_some_subscriptions_refuses_others_with_the_venues_error():
    s = HyperliquidServer("/ws", offered=Request(channels=["trades", "l2Book"],
                                                 symbols=["BTC", "ETH"]))
    [ack] = answers(s, '{"method":"subscribe","subscription":{"type":"l2Book","coin":"ETH"}}')
    assert ack["channel"] == "subscriptionResponse"
    for sub in ('{"type":"trades","coin":"SOL"}', '{"type":"bbo","coin":"BTC"}',
                '{"type":"l2Book","coin":"BTC","nSigFigs":5}'):
        assert answers(s, '{"method":"subscribe","subscription":%s}' % sub) == [
            {"channel": "error",
             "data": f"Invalid subscription {sub}: not available on this server"}]
    assert answers(s, '{"method":"unsubscribe","subscription":{"type":"l2Book","coin":"ETH"}}'
                   )[0]["channel"] == "subscriptionResponse"
    assert s.subs == []


def test_server_signature_follows_the_subscriptions():
    a, b = HyperliquidServer("/ws"), HyperliquidServer("/ws")
    assert a.signature() == b.signature()
    answers(a, '{"method":"subscribe","subscription":{"type":"trades","coin":"SOL"}}')
    assert a.signature() != b.signature()
    answers(b, '{"method":"subscribe","subscription":{"type":"trades","coin":"SOL"}}')
    assert a.signature() == b.signature()
