import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from wsrec.sim import SimOptions

from conftest import recv_json, talk

pytestmark = pytest.mark.timeout(60)


def test_ack_echoes_normalised_subscription_then_data():
    async def script(ws):
        await ws.send(json.dumps({"method": "subscribe",
                                  "subscription": {"type": "l2Book", "coin": "BTC"}}))
        ack = await recv_json(ws)
        assert ack == {"channel": "subscriptionResponse", "data": {"method": "subscribe",
                       "subscription": {"nSigFigs": None, "mantissa": None, "type": "l2Book",
                                        "coin": "BTC"}}}
        book = await recv_json(ws)
        assert book["channel"] == "l2Book" and book["data"]["coin"] == "BTC"
        await ws.send(json.dumps({"method": "subscribe",
                                  "subscription": {"type": "l2Book", "coin": "BTC"}}))
        while (msg := await recv_json(ws))["channel"] == "l2Book":
            pass
        assert msg["channel"] == "error" and msg["data"].startswith("Already subscribed")
    talk("hyperliquid", "/ws", script)


@pytest.mark.parametrize("request_", [
    {"method": "subscribe", "subscription": {"type": "trades"}},
    {"method": "subscribe", "subscription": {"type": "nope", "coin": "BTC"}},
    {"method": "subscribe", "subscription": {"type": "candle", "coin": "BTC", "interval": "7m"}},
    {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC", "extra": 1}},
    {"method": "frobnicate"},
    "not json",
])
def test_rejections(request_):
    async def script(ws):
        await ws.send(request_ if isinstance(request_, str) else json.dumps(request_))
        return await recv_json(ws)
    assert talk("hyperliquid", "/ws", script)["channel"] == "error"


def test_ping_and_idle_close():
    async def script(ws):
        await ws.send('{"method":"ping"}')
        assert await recv_json(ws) == {"channel": "pong"}
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    talk("hyperliquid", "/ws", script, options=SimOptions(idle_timeout=0.3))
