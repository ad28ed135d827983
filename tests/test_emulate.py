"""Venue emulation against literal frames (no sockets)."""

import json

from wsrec.emulate import emulator_for
from wsrec.session import Frame


def frame(payload, channels=(), symbols=(), kind="text", dir="in"):
    chans, syms = list(channels), list(symbols)
    return Frame(0, 0, 0, 0, "main", dir, kind, chans[0] if len(chans) == 1 else None,
                 syms[0] if len(syms) == 1 else None, chans, syms, payload)


def emu(venue, path="/", headers=None, manifest=None):
    sent = []
    e = emulator_for(venue, True, lambda p, t: sent.append((p, t)), path, headers or {},
                     manifest or {})
    return e, sent


def test_alpaca_cuts_mixed_arrays_down():
    e, sent = emu("alpaca")
    e.start()
    e.on_message('{"action":"auth","key":"a","secret":"b"}')
    e.on_message('{"action":"subscribe","trades":["AAPL"]}')
    assert e.ready.is_set() and json.loads(sent[-1][0])[0]["trades"] == ["AAPL"]
    mixed = frame(b'[{"T":"t","S":"AAPL","p":1},{"T":"q","S":"AAPL","bp":2},'
                  b'{"T":"t","S":"MSFT","p":3}]', ["trades", "quotes"], ["AAPL", "MSFT"])
    payload, text = e.render(mixed)
    assert json.loads(payload) == [{"T": "t", "S": "AAPL", "p": 1}] and text
    whole = frame(b'[{"T":"t","S":"AAPL","p":9}]', ["trades"], ["AAPL"])
    assert e.render(whole) == (whole.payload, True)  # untouched bytes when all of it fits
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
    assert e.render(btc) == (btc.payload, True) and e.render(eth) is None
    assert e.render(frame(b'{"channel":"pong"}', ["pong"])) is None


def test_vega_path_and_query_pick_the_stream():
    e, _ = emu("vega", "/api/v2/stream/trades?marketIds=m1")
    ok = frame(b'{"result":{"trades":[{"marketId":"m1"}]}}', ["trades"], ["m1"])
    assert e.render(ok) == (ok.payload, True)
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
                  ["action_trace"], ["r0"])
    [(payload, _)] = d.render(trace)
    assert json.loads(payload) == {"type": "action_trace", "req_id": "x1",
                                   "data": {"req_id": "inner"}}


def test_passthrough():
    e = emulator_for("alpaca", False, lambda *a: None, "/", {}, {})
    e.start()
    assert e.ready.is_set()
    assert e.render(frame(b"\x00", kind="binary")) == (b"\x00", False)
    assert e.render(frame(b"x", dir="out")) is None
