"""A short working session with each venue, as a client that knows only the URL a server
announced ('listening on URL') would have it: for the simulators and the replay server.

``CLIENTS[venue](ws)`` talks to a ``websockets.sync`` connection until the first data
frame arrives and returns it (parsed JSON); any other answer fails the test.
"""

import json

TIMEOUT = 30


def _recv(ws):
    return json.loads(ws.recv(TIMEOUT))


def alpaca(ws):
    assert _recv(ws) == [{"T": "success", "msg": "connected"}]
    ws.send(json.dumps({"action": "auth", "key": "sim-key", "secret": "sim-secret"}))
    assert _recv(ws) == [{"T": "success", "msg": "authenticated"}]
    ws.send(json.dumps({"action": "subscribe", "trades": ["FAKEPACA"]}))
    ack = _recv(ws)[0]
    assert ack["T"] == "subscription" and ack["trades"] == ["FAKEPACA"], ack
    while True:
        items = [i for i in _recv(ws) if i["T"] == "t"]
        if items:
            return items


def hyperliquid(ws):
    ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "trades",
                                                                "coin": "BTC"}}))
    assert _recv(ws)["channel"] == "subscriptionResponse"
    while True:
        message = _recv(ws)
        if message["channel"] == "trades":
            return message


def vega(ws):
    message = _recv(ws)   # the path is the subscription
    assert message["result"]["trades"], message
    return message


def flow(ws):
    ws.send(json.dumps({"subscription_id": "mine", "action": "subscribe",
                        "topic": "block_digests", "arguments": {"block_status": "sealed"}}))
    assert _recv(ws) == {"subscription_id": "mine", "action": "subscribe"}
    message = _recv(ws)
    assert message["subscription_id"] == "mine" and message["payload"]["height"], message
    return message


def dfuse(ws):
    ws.send(json.dumps({"type": "get_action_traces", "req_id": "r1", "listen": True,
                        "data": {"accounts": "eosio.token"}}))
    assert _recv(ws)["type"] == "listening"
    while True:
        message = _recv(ws)
        if message["type"] == "action_trace":
            assert message["req_id"] == "r1"
            return message


CLIENTS = {"alpaca": alpaca, "hyperliquid": hyperliquid, "vega": vega, "flow": flow,
           "dfuse": dfuse}
