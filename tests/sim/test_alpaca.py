"""The Alpaca simulator is strict the way the real server is."""

import asyncio
import json

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from wsrec.sim import SimOptions

from conftest import recv_json, talk

pytestmark = pytest.mark.timeout(60)
WELCOME = [{"T": "success", "msg": "connected"}]
AUTH = json.dumps({"action": "auth", "key": "k", "secret": "s"})


def test_welcome_auth_subscribe_and_data():
    async def script(ws):
        assert await recv_json(ws) == WELCOME
        await ws.send(AUTH)
        assert await recv_json(ws) == [{"T": "success", "msg": "authenticated"}]
        await ws.send(json.dumps({"action": "subscribe", "trades": ["FAKEPACA"],
                                  "quotes": ["FAKEPACA"]}))
        ack = (await recv_json(ws))[0]
        assert ack["T"] == "subscription" and ack["trades"] == ["FAKEPACA"]
        assert ack["corrections"] == ["FAKEPACA"] and ack["bars"] == []
        data = await recv_json(ws)
        assert all(item["T"] in ("t", "q") and item["S"] == "FAKEPACA" for item in data)
    talk("alpaca", "/v2/test", script)


@pytest.mark.parametrize("messages,code", [
    (['{"action":"subscribe","trades":["X"]}'], 401),
    (["not json"], 400),
    ([AUTH, AUTH], 403),
    ([AUTH, '{"action":"subscribe","news":["X"]}'], 410),
    ([AUTH, '{"action":"subscribe","trades":["bad symbol!"]}'], 400),
    ([AUTH, json.dumps({"action": "subscribe", "trades": [f"S{i}" for i in range(31)]})], 405),
])
def test_errors(messages, code):
    async def script(ws):
        await recv_json(ws)
        reply = None
        for m in messages:
            await ws.send(m)
            reply = await recv_json(ws)
        return reply
    assert talk("alpaca", "/v2/iex", script)[0]["code"] == code


def test_auth_timeout():
    async def script(ws):
        await recv_json(ws)
        error = await recv_json(ws)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return error
    error = talk("alpaca", "/v2/test", script, options=SimOptions(auth_timeout=0.2))
    assert error == [{"T": "error", "code": 404, "msg": "auth timeout"}]


def test_option_feed_needs_msgpack_and_accepts_fragments():
    async def plain(ws):
        await recv_json(ws)
        return await recv_json(ws)
    assert talk("alpaca", "/v1beta1/opra", plain)[0]["code"] == 412

    async def packed(ws):
        assert msgpack.unpackb(await ws.recv()) == WELCOME
        await ws.send(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        assert msgpack.unpackb(await ws.recv())[0]["msg"] == "authenticated"
        body = msgpack.packb({"action": "subscribe", "trades": ["AAPL240119C00190000"]})
        await ws.send(iter([body[:5], body[5:]]))  # a fragmented client message
        assert msgpack.unpackb(await ws.recv())[0]["T"] == "subscription"
        item = msgpack.unpackb(await ws.recv(), timestamp=3)[0]
        assert item["T"] == "t" and type(item["t"]).__name__ == "datetime"
    talk("alpaca", "/v1beta1/opra", packed, headers={"Content-Type": "application/msgpack"})


def test_header_auth_and_unknown_path():
    async def script(ws):
        assert await recv_json(ws) == WELCOME
        return await recv_json(ws)
    assert talk("alpaca", "/v2/test", script, headers={
        "APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"})[0]["msg"] == "authenticated"
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus):
        talk("alpaca", "/v9/nope", script)


def test_second_connection_gets_406():
    async def main():
        from websockets.asyncio.client import connect

        from wsrec.sim import get_simulator
        sim = get_simulator("alpaca")
        url = await sim.start()
        try:
            async with connect(url + "/v2/test") as first, connect(url + "/v2/test") as second:
                await recv_json(first)
                await recv_json(second)
                return await recv_json(second)
        finally:
            await sim.close()
    assert asyncio.run(main())[0]["code"] == 406
