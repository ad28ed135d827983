"""Venue emulation against literal frames (no sockets)."""

import json

from wsrec.replay._emulate import emulator_for
from wsrec.store.session import Frame


def frame(payload, channels=(), symbols=(), kind="text", dir="in"):
    chans, syms = list(channels), list(symbols)
    return Frame(0, 0, 0, 0, "main", dir, kind, chans[0] if len(chans) == 1 else None,
                 syms[0] if len(syms) == 1 else None, chans, syms, payload)


def emu(venue, path="/", headers=None):
    sent = []
    e = emulator_for(venue, True, lambda p, t: sent.append((p, t)), path, headers or {})
    return e, sent


def test_alpaca_cuts_mixed_arrays_down():
    e, sent = emu("alpaca")
    e.start()
    e.on_message('{"action":"auth","key":"a","secret":"b"}')
    e.on_message('{"action":"subscribe","trades":["AAPL"]}')
    assert e.ready.is_set() and json.loads(sent[-1][0])[0]["trades"] == ["AAPL"]
    mixed = frame(b'[{"T":"t","S":"AAPL","p":1},{"T":"q","S":"AAPL","bp":2},'
                  b'{"T":"t","S":"MSFT","p":3}]', ["trades", "quotes"], ["AAPL", "MSFT"])
    [(payload, text)] = e.render(mixed)
    assert json.loads(payload) == [{"T": "t", "S": "AAPL", "p": 1}] and text
    whole = frame(b'[{"T":"t","S":"AAPL","p":9}]', ["trades"], ["AAPL"])
    assert e.render(whole) == [(whole.payload, True)]  # untouched bytes when all of it fits
    assert e.render(frame(b'[{"T":"q","S":"AAPL"}]', ["quotes"], ["AAPL"])) is None
    assert e.render(frame(b'[{"T":"subscription"}]', ["subscription"])) is None


def test_alpaca_requires_auth_before_subscribe():
    e, sent = emu("alpaca")
    e.on_message('{"action":"subscribe","trades":["AAPL"]}')
    assert json.loads(sent[-1][0])[0]["code"] == 401 and not e.ready.is_set()


def test_hyperliquid_routes_by_channel_and_coin():
    e, sent = emu("hyperliquid")
    e.on_message('{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}')
    assert json.loads(sent[-1][0])["channel"] == "subscriptionResponse"
    btc = frame(b'{"channel":"trades","data":[{"coin":"BTC"}]}', ["trades"], ["BTC"])
    eth = frame(b'{"channel":"trades","data":[{"coin":"ETH"}]}', ["trades"], ["ETH"])
    assert e.render(btc) == [(btc.payload, True)] and e.render(eth) is None
    assert e.render(frame(b'{"channel":"pong"}', ["pong"])) is None


def test_vega_path_and_query_pick_the_stream():
    e, _ = emu("vega", "/api/v2/stream/trades?marketIds=m1")
    ok = frame(b'{"result":{"trades":[{"marketId":"m1"}]}}', ["trades"], ["m1"])
    assert e.render(ok) == [(ok.payload, True)]
    assert e.render(frame(b"{}", ["trades"], ["m2"])) is None
    assert e.render(frame(b"{}", ["orders"], ["m1"])) is None


def test_flow_and_dfuse_retag_with_the_clients_ids():
    e, sent = emu("flow")
    e.on_message('{"subscription_id":"mine","action":"subscribe","topic":"blocks",'
                 '"arguments":{"block_status":"sealed"}}')
    data = frame(b'{"subscription_id":"s0-blocks","topic":"blocks","payload":{"height":"1"}}',
                 ["blocks"], ["s0-blocks"])
    [(payload, _)] = e.render(data)
    assert json.loads(payload) == {"subscription_id": "mine", "topic": "blocks",
                                   "payload": {"height": "1"}}
    d, sent = emu("dfuse")
    d.on_message('{"type":"get_action_traces","req_id":"x1","listen":true,'
                 '"data":{"accounts":"a"}}')
    assert json.loads(sent[-1][0])["type"] == "listening"
    trace = frame(b'{"type":"action_trace","req_id":"r0","data":{"req_id":"inner"}}',
                  ["action_trace"], ["a"])
    [(payload, _)] = d.render(trace)
    assert json.loads(payload) == {"type": "action_trace", "req_id": "x1",
                                   "data": {"req_id": "inner"}}


def test_passthrough():
    e = emulator_for("alpaca", False, lambda *a: None, "/", {})
    e.start()
    assert e.ready.is_set()
    assert e.render(frame(b"\x00", kind="binary")) == [(b"\x00", False)]
    assert e.render(frame(b"x", dir="out")) is None


# -- odd client messages: the venue's error reply, nothing applied --------------------------

def test_campaign_shapes_get_the_venues_errors_and_change_nothing():
    a, sent = emu("alpaca")
    a.on_message('{"action":"auth","key":"a","secret":"b"}')
    a.on_message('{"action":"subscribe","trades":["AAPL"]}')
    a.on_message('{"action":"subscribe","trades":[{}],"quotes":["AMD"]}')
    assert json.loads(sent[-1][0]) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
    assert a.server.subs == {"trades": {"AAPL"}}  # the valid part of a refused message is not kept

    h, sent = emu("hyperliquid")
    h.on_message('{"method":"subscribe","subscription":{"type":["trades"]}}')
    assert json.loads(sent[-1][0])["channel"] == "error" and not h.server.subs
    assert not h.ready.is_set()

    f, sent = emu("flow")
    f.on_message('{"action":"subscribe","subscription_id":{},"topic":"blocks"}')
    assert json.loads(sent[-1][0]) == {"error": {
        "code": 400, "message": "subscription_id must be 1 to 20 characters"},
        "action": "subscribe"}
    assert not f.server.subs

    d, sent = emu("dfuse")
    d.on_message('{"type":"unlisten","data":5}')
    reply = json.loads(sent[-1][0])
    assert reply["type"] == "error" and reply["data"]["code"] == "invalid_request"


def test_generic_errors():
    for venue, expected in [
            ("alpaca", [{"T": "error", "code": 500, "msg": "internal error"}]),
            ("hyperliquid", {"channel": "error", "data": "Internal error"}),
            ("flow", {"error": {"code": 500, "message": "internal error"}, "action": None})]:
        e, sent = emu(venue)
        e.internal_error()
        assert json.loads(sent[-1][0]) == expected
    d, sent = emu("dfuse")
    d.internal_error()
    assert json.loads(sent[-1][0])["data"]["code"] == "internal_error"
    v, sent = emu("vega")
    v.internal_error()
    v.on_message("anything")
    assert sent == []


def test_hyperliquid_duplicates_and_post():
    e, sent = emu("hyperliquid")
    sub = '{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}'
    e.on_message(sub)
    e.on_message(sub)
    assert json.loads(sent[-1][0])["data"].startswith("Already subscribed: ")
    assert len(e.server.subs) == 1
    e.on_message('{"method":"post","id":7,"request":{"type":"info","payload":{}}}')
    assert json.loads(sent[-1][0]) == {"channel": "post", "data": {"id": 7, "response": {
        "type": "error", "payload": "post requests are not replayed"}}}


def test_flow_ids_and_limits():
    e, sent = emu("flow")
    e.on_message('{"subscription_id":"0","action":"subscribe","topic":"events"}')
    e.on_message('{"action":"subscribe","topic":"events"}')  # a generated id: not "0"
    generated = json.loads(sent[-1][0])["subscription_id"]
    assert generated != "0" and set(e.server.subs) == {"0", generated}
    e.on_message('{"subscription_id":"0","action":"subscribe","topic":"events"}')
    assert json.loads(sent[-1][0])["error"]["code"] == 400 and len(e.server.subs) == 2
    for i in range(18):
        e.on_message(json.dumps({"subscription_id": f"s{i}", "action": "subscribe",
                                 "topic": "events"}))
    e.on_message('{"subscription_id":"one-more","action":"subscribe","topic":"events"}')
    assert json.loads(sent[-1][0])["error"]["code"] == 429 and len(e.server.subs) == 20


def test_dfuse_stream_limit_and_binary():
    e, sent = emu("dfuse")
    for i in range(12):
        e.on_message(json.dumps({"type": "get_head_info", "req_id": f"r{i}", "listen": True}))
    e.on_message('{"type":"get_head_info","req_id":"r12","listen":true}')
    assert json.loads(sent[-1][0])["data"]["code"] == "ws_too_much_stream_error"
    e.on_message('{"type":"get_head_info","req_id":"r0","listen":true}')  # the same again
    assert json.loads(sent[-1][0])["type"] == "listening" and len(e.server.requests) == 12
    e.on_message(b'{"type":"get_head_info","req_id":"b"}')
    assert json.loads(sent[-1][0])["data"]["code"] == "invalid_message"


# -- what clients ask, honoured as the venue would --------------------------------------------

def test_alpaca_feed_from_the_path():
    e, sent = emu("alpaca", "/v1beta3/crypto/us")
    e.start()
    e.on_message('{"action":"auth","key":"a","secret":"b"}')
    e.on_message('{"action":"subscribe","orderbooks":["BTC/USD"]}')
    ack = json.loads(sent[-1][0])[0]
    assert ack["orderbooks"] == ["BTC/USD"] and "lulds" not in ack
    e, sent = emu("alpaca", "/v2/iex")
    e.start()
    e.on_message('{"action":"auth","key":"a","secret":"b"}')
    e.on_message('{"action":"subscribe","news":["*"]}')
    assert json.loads(sent[-1][0])[0]["code"] == 410 and not e.ready.is_set()
    closed = []
    e = emulator_for("alpaca", True, lambda p, t: sent.append((p, t)), "/v1beta1/opra", {},
                     close=lambda code, reason: closed.append(code))
    e.start()
    assert json.loads(sent[-1][0])[0]["code"] == 412 and closed == [1008]
    assert e.render(frame(b'[{"T":"t","S":"X"}]', ["trades"], ["X"])) is None


def test_flow_lists_subscriptions_with_their_arguments():
    e, sent = emu("flow")
    e.on_message('{"subscription_id":"mine","action":"subscribe","topic":"blocks",'
                 '"arguments":{"block_status":"sealed","start_block_height":"5"}}')
    e.on_message('{"action":"list_subscriptions"}')
    assert json.loads(sent[-1][0]) == {"subscriptions": [
        {"subscription_id": "mine", "topic": "blocks",
         "arguments": {"block_status": "sealed", "start_block_height": "5"}}],
        "action": "list_subscriptions"}


def test_dfuse_accounts_filter_gets_only_that_accounts_traces():
    d, sent = emu("dfuse")
    d.on_message('{"type":"get_action_traces","req_id":"mine","listen":true,'
                 '"data":{"accounts":"eosio.token"}}')

    def trace(account):
        return frame(b'{"type":"action_trace","req_id":"r0","data":{"trace":{"receipt":'
                     b'{"receiver":"%s"},"act":{"account":"%s"}}}}' % (account, account),
                     ["action_trace"], [account.decode()])
    [(payload, _)] = d.render(trace(b"eosio.token"))
    assert json.loads(payload)["req_id"] == "mine"
    assert d.render(trace(b"eosio")) is None
    progress = frame(b'{"type":"progress","req_id":"r1","data":{"block_num":10}}',
                     ["progress"], ["eosio"])
    assert d.render(progress) is None


def test_vega_refuses_an_unknown_filter_and_closes():
    sent, closed = [], []
    e = emulator_for("vega", True, lambda p, t: sent.append((p, t)),
                     "/api/v2/stream/trades?nope=1", {}, close=lambda *a: closed.append(a))
    e.start()
    assert json.loads(sent[-1][0])["error"]["code"] == 3 and closed == [(1000, "")]
    assert not e.ready.is_set() and e.render(frame(b"{}", ["trades"])) is None


class _Recorded:
    """A session as ``client_path`` reads it: its manifest's connections."""

    def __init__(self, *conns):
        self.manifest = {"connections": [{"stream": s, "url": u} for s, u in conns]}


def test_the_announced_path_is_a_recorded_stream_the_venue_serves():
    from wsrec.replay._emulate import client_path
    host = "wss://api.n07.testnet.vega.xyz"
    depth = _Recorded(("markets/depth", f"{host}/api/v2/stream/markets/depth?marketIds=ab"),
                      ("trades", f"{host}/api/v2/stream/trades"))
    assert client_path("vega", [depth]) == "/api/v2/stream/markets/depth"
    assert client_path("vega", [depth], frozenset({"trades"})) == "/api/v2/stream/trades"
    assert client_path("vega", [depth], frozenset({"orders"})) == \
        "/api/v2/stream/markets/depth"   # no stream of those channels: the first one
    assert client_path("vega", []) == "/api/v2/stream/trades"   # nothing recorded: default
    elsewhere = _Recorded(("trades", "ws://127.0.0.1:9/proxy/trades"))
    assert client_path("vega", [elsewhere]) == "/api/v2/stream/trades"
    crypto = _Recorded(("crypto", "wss://stream.data.alpaca.markets/v1beta3/crypto/us"))
    assert client_path("alpaca", [crypto]) == "/v1beta3/crypto/us"
    dfuse = _Recorded(("main", "wss://eos.dfuse.eosnation.io/v1/stream?token=x"))
    assert client_path("dfuse", [dfuse]) == "/v1/stream?token=TOKEN"   # the default's query
    assert client_path("url", [dfuse]) == ""
