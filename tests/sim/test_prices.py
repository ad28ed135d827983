"""Each symbol trades at its own level, in its own decimals."""

import json
import random

import pytest

from wsrec.sim import SimOptions
from wsrec.sim.base import PRICE_LEVELS, Walk, price_level

from conftest import recv_json, talk

pytestmark = pytest.mark.timeout(60)
AUTH = json.dumps({"action": "auth", "key": "k", "secret": "s"})


def test_levels_by_ticker_or_base_currency_and_from_the_name_otherwise():
    assert price_level("BTC") == price_level("BTC/USD") == price_level("btc-perp") == \
        (90_000.0, 1)
    assert price_level("ETH/USD")[0] == 3_000 and price_level("SOL")[0] == 150
    assert price_level("AAPL") == (230.0, 2) and price_level("MSFT") == (420.0, 2)
    unknown = {s: price_level(s) for s in ("FAKEPACA", "NVDA", "DOGE/USD", "X", "@107")}
    assert unknown == {s: price_level(s) for s in unknown}       # deterministic
    assert all(5 <= level <= 5_000 and d == 2 for level, d in unknown.values())
    assert len({level for level, _ in unknown.values()}) == len(unknown)


def test_walks_stay_near_their_level_in_their_decimals():
    walk = Walk(random.Random(1))
    for symbol, (level, decimals) in PRICE_LEVELS.items():
        prices = [walk.next(symbol) for _ in range(200)]
        assert all(0.95 * level < p < 1.05 * level for p in prices)
        assert all(round(p, decimals) == p for p in prices)
        assert walk.tick(symbol) == 10.0 ** -decimals <= walk.step(symbol)
    assert walk.step("BTC") == 9.0 and walk.format("SOL", 150) == "150.000"


def test_hyperliquid_coins_at_their_levels():
    async def script(ws):
        for coin in ("BTC", "ETH", "SOL"):
            await ws.send(json.dumps({"method": "subscribe",
                                      "subscription": {"type": "trades", "coin": coin}}))
        out = {}
        while len(out) < 3 or min(map(len, out.values())) < 5:
            msg = await recv_json(ws)
            if msg["channel"] == "trades":
                for trade in msg["data"]:
                    out.setdefault(trade["coin"], []).append(trade["px"])
        return out
    got = talk("hyperliquid", "/ws", script, options=SimOptions(rate=200))
    for coin, decimals in (("BTC", 1), ("ETH", 2), ("SOL", 3)):
        level = PRICE_LEVELS[coin][0]
        assert all(0.95 * level < float(p) < 1.05 * level for p in got[coin])
        assert all(len(p.split(".")[1]) == decimals for p in got[coin])


@pytest.mark.parametrize("path,symbols", [("/v2/iex", ["AAPL", "MSFT"]),
                                          ("/v1beta3/crypto/us", ["BTC/USD", "ETH/USD"])])
def test_alpaca_symbols_at_their_levels(path, symbols):
    async def script(ws):
        await recv_json(ws)
        await ws.send(AUTH)
        await recv_json(ws)
        await ws.send(json.dumps({"action": "subscribe", "trades": symbols,
                                  "quotes": symbols}))
        await recv_json(ws)
        return [item for _ in range(60) for item in await recv_json(ws)]
    items = talk("alpaca", path, script, options=SimOptions(rate=400))
    assert {i["S"] for i in items} == set(symbols)
    for item in items:
        level = price_level(item["S"])[0]
        for key in ("p", "bp", "ap"):
            if key in item:
                assert 0.95 * level < item[key] < 1.05 * level, item
