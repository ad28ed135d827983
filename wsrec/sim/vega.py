"""Vega data node stream simulator (PROTOCOLS.md section 3).

The protocol is ``wsrec.venues.vega.VegaServer``'s (the path picks the stream, the query
its filters); this adds the data, in the data node's JSON (camelCase keys, int64 values
as strings, zero values left out): ``accounts``, ``orders`` and ``positions`` begin with
a snapshot in pages of 50 (``lastPage`` on the last), then updates at ``rate``;
``trades`` sends trades, and ``markets/depth``, ``markets/depth/updates`` and
``markets/data`` follow one order book per market (whole books, the changed levels with
chained ``sequenceNumber``/``previousSequenceNumber``, best bid and offer); ``candle/data``
sends one-minute candles. Vega times are the simulator's clock less a few ms of latency
(a snapshot's items one second apart up to then). ``error=CODE`` sends an error frame
with that gRPC code and ends the stream.

Markets are known by their ids, 64 hex digits, as on Vega: a stream with no market
filter trades ``MARKET_NAMES``, and a filter may name a market by its id or, in the
simulator only, by a readable name (``BTC/USDT-PERP``): frames carry the id derived from
it (``market_id``, the sha256 of the name). Prices are integers in the market's smallest
units, around its level (``wsrec.sim.base.PRICE_LEVELS``: BTC near 90,000.0 is 900000
at one decimal).
"""

from __future__ import annotations

import hashlib
import re

from wsrec.venues.vega import GRPC_CODES, VegaServer
from wsrec.sim.base import Simulator, Walk, compact

__all__ = ["VegaSim", "MARKETS", "MARKET_NAMES", "market_id"]

#: the markets of a stream without a market filter, by name
MARKET_NAMES = ("BTC/USDT-PERP", "ETH/USDT-PERP", "SOL/USDT-PERP")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def market_id(market: str) -> str:
    """A market's id: ``market`` itself when it is one (64 hex digits, in lower case),
    else the sha256 of the name, in hex."""
    if _HEX64.match(market):
        return market.lower()
    return hashlib.sha256(market.encode()).hexdigest()


#: the ids of ``MARKET_NAMES``
MARKETS = [market_id(name) for name in MARKET_NAMES]
_SNAPSHOT = {"accounts": "accounts", "orders": "orders", "positions": "positions"}
_BOOKS = ("markets/depth", "markets/depth/updates", "markets/data")
_PAGE = 50
_SNAPSHOT_AGE = 1_000_000_000      # vega time between a snapshot's items (ns)
_MINUTE = 60_000_000_000


class VegaSim(Simulator):
    venue = "vega"
    server = VegaServer
    errors = {str(code): name for code, name in GRPC_CODES.items()}

    def make_server(self, request) -> VegaServer:
        server, err = VegaServer(request.path, request.headers), self.options.error
        if err:   # the stream ends at once with this gRPC code
            start = server.start

            def start_and_fail():
                start()
                if server.close is None:
                    server.error(int(err), "refused by --error")
            server.start = start_and_fail
        return server

    def background(self, ws, state) -> list:
        server = state["server"]
        candle = dict(server.query).get("candleId", "").rpartition("_")[2]
        names = list(server.markets or ([candle] if candle else MARKET_NAMES))
        state["names"] = {market_id(n): n for n in names}   # id -> what prices it
        return [self.stream(ws, state, server.stream, list(state["names"]))]

    async def stream(self, ws, state, path, markets) -> None:
        rng = state["rng"]
        prices = _Prices(rng, state["names"])
        key = _SNAPSHOT.get(path)
        now = self.exchange_ns(state)
        if key:   # what was there before: one item a second up to now
            count = rng.randint(60, 130)
            items = [self.item(rng, path, rng.choice(markets), i,
                               now - (count - i) * _SNAPSHOT_AGE, prices) for i in range(count)]
            for start in range(0, len(items), _PAGE):
                page = {key: items[start:start + _PAGE]}
                if start + _PAGE >= len(items):
                    page["lastPage"] = True
                await self.send(ws, state, compact({"result": {"snapshot": page}}))
        books = {m: _Book(rng, m, now, prices) for m in markets} if path in _BOOKS else {}
        candle = _Candle(prices, markets[0])
        n = 0
        async for _ in self.ticks():
            n += 1
            market = rng.choice(markets)
            ts = self.exchange_ns(state)
            if key:
                body = {"updates": {key: [self.item(rng, path, market, n, ts, prices)]}}
            elif path == "trades":
                body = {"trades": [self.trade(rng, market, ts, prices)]}
            elif path == "markets/depth":
                books[market].change(rng, ts)
                body = {"marketDepth": [books[market].depth()]}
            elif path == "markets/depth/updates":
                body = {"update": [books[market].update(books[market].change(rng, ts))]}
            elif path == "markets/data":
                books[market].change(rng, ts)
                body = {"marketData": [books[market].data(ts)]}
            elif path == "candle/data":
                body = {"candle": candle.tick(rng, ts)}
            else:
                body = {path.replace("/", "_"): self.item(rng, path, market, n, ts, prices)}
            await self.emit(ws, state, compact({"result": body}))

    def item(self, rng, path, market, n, ts, prices) -> dict:
        price = str(prices.next(market))
        return {"id": f"{rng.getrandbits(128):032x}", "marketId": market, "price": price,
                "size": str(rng.randint(1, 50)), "side": rng.choice([1, 2]),
                "timestamp": str(ts), "seq": n}

    @staticmethod
    def trade(rng, market, ts, prices) -> dict:
        """A vega.Trade: ``aggressor`` 1 (buy) or 2 (sell), fees as strings."""
        fee = {"makerFee": str(rng.randint(1, 90)), "infrastructureFee": str(rng.randint(1, 30)),
               "liquidityFee": str(rng.randint(1, 30))}
        return {"id": f"{rng.getrandbits(256):064x}", "marketId": market,
                "price": str(prices.next(market)), "size": str(rng.randint(1, 50)),
                "buyer": f"{rng.getrandbits(256):064x}", "seller": f"{rng.getrandbits(256):064x}",
                "aggressor": rng.choice([1, 2]), "buyOrder": f"{rng.getrandbits(256):064x}",
                "sellOrder": f"{rng.getrandbits(256):064x}", "timestamp": str(ts), "type": 1,
                "buyerFee": fee, "sellerFee": {}}


class _Prices:
    """Each market's price in its smallest units (an integer): a walk from the level of
    the market's name at its decimals (an id that names no market: a level from the id)."""

    def __init__(self, rng, names: dict[str, str]):
        self.walk, self.names = Walk(rng), names

    def name(self, market: str) -> str:
        return self.names.get(market, market)

    def next(self, market: str) -> int:
        name = self.name(market)
        return round(self.walk.next(name) * 10 ** self.walk.decimals(name))

    def mid(self, market: str) -> int:
        name = self.name(market)
        return round(self.walk.mid(name) * 10 ** self.walk.decimals(name))


class _Book:
    """One market's order book as the data node's market depth sees it: integer prices
    around a fixed mid, the volume and order count of each level, and the sequence
    number of the last change (vega time in ns plus the event's number in the block)."""

    def __init__(self, rng, market: str, ts: int, prices: _Prices):
        self.market = market
        self.mid = prices.mid(market)
        self.levels: dict[str, dict[int, tuple[int, int]]] = {
            "buy": {self.mid - i: (rng.randint(1, 50), rng.randint(1, 5)) for i in range(1, 6)},
            "sell": {self.mid + i: (rng.randint(1, 50), rng.randint(1, 5)) for i in range(1, 6)}}
        self.seq, self.prev = ts, 0

    def change(self, rng, ts: int) -> dict[str, list[int]]:
        """Change one level (a new volume, or gone) and move the sequence number on."""
        side = rng.choice(("buy", "sell"))
        price = self.mid - rng.randint(1, 8) if side == "buy" else self.mid + rng.randint(1, 8)
        levels = self.levels[side]
        if price in levels and rng.random() < 0.3:
            del levels[price]
        else:
            levels[price] = (rng.randint(1, 50), rng.randint(1, 5))
        self.prev, self.seq = self.seq, max(ts + rng.randint(1, 999), self.seq + 1)
        return {side: [price]}

    def level(self, side: str, price: int) -> dict:
        """A vega.PriceLevel; a level that is gone has only its price (zeros are left out)."""
        found = self.levels[side].get(price)
        if found is None:
            return {"price": str(price)}
        volume, orders = found
        return {"price": str(price), "numberOfOrders": str(orders), "volume": str(volume)}

    def prices(self, side: str) -> list[int]:
        return sorted(self.levels[side], reverse=side == "buy")

    def depth(self) -> dict:
        return {"marketId": self.market,
                "buy": [self.level("buy", p) for p in self.prices("buy")],
                "sell": [self.level("sell", p) for p in self.prices("sell")],
                "sequenceNumber": str(self.seq)}

    def update(self, changed: dict[str, list[int]]) -> dict:
        out = {"marketId": self.market}
        for side, prices in changed.items():
            out[side] = [self.level(side, p) for p in prices]
        out.update(sequenceNumber=str(self.seq), previousSequenceNumber=str(self.prev))
        return out

    def data(self, ts: int) -> dict:
        """A vega.MarketData: an empty side has price "0" and no volume."""
        best = {}
        for side, name in (("buy", "Bid"), ("sell", "Offer")):
            prices = self.prices(side)
            price = prices[0] if prices else 0
            best[f"best{name}Price"] = str(price)
            if prices:
                best[f"best{name}Volume"] = str(self.levels[side][price][0])
        return {"markPrice": str(self.mid), **best, "midPrice": str(self.mid),
                "market": self.market, "timestamp": str(ts), "openInterest": "1200",
                "marketTradingMode": 1, "marketState": 5, "lastTradedPrice": str(self.mid)}


class _Candle:
    """One-minute candles (data node ``Candle``) from a random walk of trade prices."""

    def __init__(self, prices: _Prices, market: str):
        self.prices, self.market = prices, market
        self.price = prices.mid(market)
        self.start = None
        self.bar: dict = {}

    def tick(self, rng, ts: int) -> dict:
        self.price = self.prices.next(self.market)
        size = rng.randint(1, 20)
        start = ts - ts % _MINUTE
        if start != self.start:
            self.start = start
            self.bar = {"open": self.price, "high": self.price, "low": self.price, "volume": 0,
                        "notional": 0}
        bar = self.bar
        bar["high"], bar["low"] = max(bar["high"], self.price), min(bar["low"], self.price)
        bar["volume"] += size
        bar["notional"] += size * self.price
        return {"start": str(start), "lastUpdate": str(ts), "high": str(bar["high"]),
                "low": str(bar["low"]), "open": str(bar["open"]), "close": str(self.price),
                "volume": str(bar["volume"]), "notional": str(bar["notional"])}
