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


def test_the_feed_is_the_url_path():
    async def subscribe(ws, **channels):
        await recv_json(ws)
        await ws.send(AUTH)
        await recv_json(ws)
        await ws.send(json.dumps({"action": "subscribe", **channels}))
        return (await recv_json(ws))[0]

    async def crypto(ws):
        ack = await subscribe(ws, trades=["*"], orderbooks=["BTC/USD"])
        assert "orderbooks" in ack and "lulds" not in ack and "corrections" not in ack
        return await recv_json(ws)
    data = talk("alpaca", "/v1beta3/crypto/us", crypto)
    assert all(item["S"] in ("BTC/USD", "ETH/USD") for item in data)

    async def test_feed(ws):
        await subscribe(ws, trades=["*"])
        return await recv_json(ws)
    assert {item["S"] for item in talk("alpaca", "/v2/test", test_feed)} == {"FAKEPACA"}

    async def orderbooks_on_sip(ws):
        return await subscribe(ws, orderbooks=["AAPL"])
    assert talk("alpaca", "/v2/sip", orderbooks_on_sip)["code"] == 410

    async def news(ws):
        return await subscribe(ws, news=["*"])
    assert talk("alpaca", "/v1beta1/news", news) == {"T": "subscription", "news": ["*"]}


def test_credentials_from_the_options():
    async def script(ws):
        await recv_json(ws)
        await ws.send(AUTH)
        return await recv_json(ws)
    options = SimOptions(credentials={"APCA_API_KEY_ID": "mine", "APCA_API_SECRET_KEY": "x"})
    assert talk("alpaca", "/v2/test", script, options=options)[0]["code"] == 402

    async def right(ws):
        await recv_json(ws)
        await ws.send(json.dumps({"action": "auth", "key": "mine", "secret": "x"}))
        return await recv_json(ws)
    assert talk("alpaca", "/v2/test", right, options=options)[0]["msg"] == "authenticated"
    from wsrec.sim import get_simulator
    assert get_simulator("alpaca", options).credentials() == options.credentials
    assert get_simulator("alpaca").credentials() == {"APCA_API_KEY_ID": "sim-key",
                                                     "APCA_API_SECRET_KEY": "sim-secret"}


def test_iex_has_the_free_plans_symbol_limit_and_sip_every_exchange():
    many = json.dumps({"action": "subscribe", "trades": [f"S{i}" for i in range(31)]})

    async def script(ws):
        await recv_json(ws)
        await ws.send(AUTH)
        await recv_json(ws)
        await ws.send(many)
        ack = (await recv_json(ws))[0]
        exchanges = set()
        for _ in range(40):
            exchanges.update(item["x"] for item in await recv_json(ws))
        return ack, exchanges
    ack, exchanges = talk("alpaca", "/v2/sip", script, options=SimOptions(rate=400))
    assert ack["T"] == "subscription" and len(ack["trades"]) == 31 and len(exchanges) > 1

    async def test_feed(ws):
        await recv_json(ws)
        await ws.send(AUTH)
        await recv_json(ws)
        await ws.send('{"action":"subscribe","trades":["AAPL","FAKEPACA"]}')
        await recv_json(ws)
        return {item["S"] for _ in range(10) for item in await recv_json(ws)}
    assert talk("alpaca", "/v2/test", test_feed, options=SimOptions(rate=400)) == {"FAKEPACA"}


#: the keys of each message type, as the venue docs list them (PROTOCOLS.md section 1)
CRYPTO_KEYS = {"t": {"T", "S", "p", "s", "t", "i", "tks"},
               "q": {"T", "S", "bp", "bs", "ap", "as", "t"},
               "b": {"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"},
               "u": {"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"},
               "d": {"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"},
               "o": {"T", "S", "t", "b", "a"}}
STOCK_KEYS = {"t": {"T", "S", "i", "x", "p", "s", "c", "z", "t"},
              "q": {"T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t"},
              "b": {"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"}}


def _items_by_type(path, channels, types):
    async def script(ws):
        await recv_json(ws)
        await ws.send(AUTH)
        await recv_json(ws)
        await ws.send(json.dumps({"action": "subscribe", **channels}))
        await recv_json(ws)
        seen: dict = {}
        while set(seen) < types:
            for item in await recv_json(ws):
                seen.setdefault(item["T"], []).append(item)
        return seen
    return talk("alpaca", path, script, options=SimOptions(rate=300), timeout=30)


def test_crypto_messages_have_the_crypto_shapes():
    symbols = ["BTC/USD", "ETH/USD"]
    seen = _items_by_type("/v1beta3/crypto/us", {c: symbols for c in (
        "trades", "quotes", "bars", "updatedBars", "dailyBars", "orderbooks")}, set(CRYPTO_KEYS))
    for code, items in seen.items():
        for item in items:
            keys = set(item) - {"r"} if code == "o" else set(item)
            assert keys == CRYPTO_KEYS[code], (code, item)
            assert item["S"] in symbols and item["t"].endswith("Z")
    trade, quote = seen["t"][0], seen["q"][0]
    assert trade["tks"] in ("B", "S") and isinstance(trade["s"], float) and trade["s"] > 0
    assert all(isinstance(quote[k], float) for k in ("bp", "bs", "ap", "as"))
    assert quote["bp"] < quote["ap"]
    assert any(isinstance(b["v"], float) and b["v"] % 1 for b in seen["b"] + seen["u"] + seen["d"])
    btc = [t["p"] for t in seen["t"] if t["S"] == "BTC/USD"]
    assert all(80_000 < p < 100_000 for p in btc)   # BTC's price level
    assert any(o.get("r") is True for o in seen["o"])   # each symbol's first book is full


def test_stock_messages_keep_the_stock_shapes():
    seen = _items_by_type("/v2/iex", {"trades": ["AAPL"], "quotes": ["AAPL"], "bars": ["AAPL"]},
                          set(STOCK_KEYS))
    for code, items in seen.items():
        assert all(set(item) == STOCK_KEYS[code] for item in items), code
    assert {t["x"] for t in seen["t"]} == {"V"} and isinstance(seen["q"][0]["bs"], int)
