"""Alpaca market data stream simulator (PROTOCOLS.md section 1).

The protocol is ``wsrec.venues.alpaca.AlpacaServer``'s; this adds the clock and the
data. Auth by message within ``auth_timeout`` (404 after) or by upgrade headers, with
the credentials of ``SimOptions.credentials`` (any non-empty pair when they name none);
at most ``max_symbols`` trade and quote symbols on the iex feed (405) and
``max_connections`` connections (406). Data arrays sometimes batch several messages of
mixed types and symbols. The feed shows in the data: ``*`` stands for its own symbols,
the test feed streams FAKEPACA only, trades and quotes come from IEX alone on iex and
from every exchange on sip; crypto trades, quotes and bars have crypto's fields (trades
``S p s t i tks``, the taker side and no exchange or conditions; quotes ``S bp bs ap as
t``) and fractional sizes and volumes. Prices walk from each symbol's level
(``wsrec.sim.base.PRICE_LEVELS``: BTC near 90,000, AAPL near 230, ...) in its decimals.
Each symbol's first order book is a full one
(``r:true``, a few levels a side), then changes to a level or two, some removing one
(size 0). Minute bars start on the minute, daily bars on the day. ``error=CODE`` sends
CODE after the welcome (402: refuses the credentials). Times (``t``, news'
``created_at``/``updated_at``) are the simulator's clock less a few ms of latency.
"""

from __future__ import annotations

import asyncio

from wsrec.venues.alpaca import ERRORS, KEY_ENV, SECRET_ENV, TYPES, AlpacaServer
from wsrec.sim.base import Simulator, Walk

__all__ = ["AlpacaSim"]

_CODE_OF = {v: k for k, v in TYPES.items()}
_MINUTE, _DAY = 60_000_000_000, 86_400_000_000_000
#: what '*' stands for, by feed
_ALL = {"test": ["FAKEPACA"], "crypto": ["BTC/USD", "ETH/USD"],
        "indicative": ["AAPL240119C00190000"], "opra": ["AAPL240119C00190000"]}
_QUIET = {"corrections", "cancelErrors", "statuses", "lulds"}
_SIP_EXCHANGES = "KQNPVZ"   # every exchange on SIP; IEX ("V") alone on the iex feed


class AlpacaSim(Simulator):
    venue = "alpaca"
    server = AlpacaServer
    errors = {str(code): text for code, text in ERRORS.items()}
    sample_credentials = {KEY_ENV: "sim-key", SECRET_ENV: "sim-secret"}

    def make_server(self, request) -> AlpacaServer:
        server = AlpacaServer(request.path, request.headers)
        if server.feed == "iex":   # the free plan's feed and its symbol limit
            server.symbol_limit = self.options.max_symbols
        wanted, err, start = self.options.credentials, self.options.error, server.start
        if err == "402":
            server.accept = lambda key, secret: False
        elif wanted:
            server.accept = lambda key, secret: (key, secret) == (wanted.get(KEY_ENV),
                                                                  wanted.get(SECRET_ENV))

        def start_with_limits():
            start()
            if server.close is None and self.active > self.options.max_connections:
                server.error(406, close=True)
            elif server.close is None and err and err.isdigit() and err != "402":
                server.error(int(err), close=True)
        server.start = start_with_limits
        return server

    def background(self, ws, state) -> list:
        return [self.auth_watch(ws, state)]

    async def auth_watch(self, ws, state) -> None:
        await asyncio.sleep(self.options.auth_timeout)
        if not state["server"].authed:
            state["server"].error(404, close=True)
            await self.flush(ws, state)

    def update(self, ws, state) -> None:
        if state["server"].ready and "stream" not in state["tasks"]:
            state["tasks"]["stream"] = self.spawn(self.stream(ws, state))

    async def stream(self, ws, state) -> None:
        server, rng = state["server"], state["rng"]
        prices = Walk(rng)
        books: dict[str, list] = {}   # symbol -> the prices of its levels on the book
        seq = 0
        async for _ in self.ticks():
            pairs = [(c, s) for c, syms in server.subs.items() for s in syms
                     if (c in _CODE_OF or c == "news") and c not in _QUIET and
                     (server.feed != "test" or s in ("*", "FAKEPACA"))]
            if not pairs:
                continue
            items = []
            for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
                channel, symbol = rng.choice(pairs)
                if symbol == "*":
                    symbol = rng.choice(_ALL.get(server.feed, ["AAPL", "MSFT"]))
                seq += 1
                t = self.exchange_ns(state)
                if channel == "orderbooks":
                    item = self.book(rng, symbol, prices, books, t)
                else:
                    item = self.item(rng, channel, symbol, prices, seq, t)
                if server.feed == "crypto" and item["T"] in ("t", "q", "b", "u", "d"):
                    item = self.crypto(rng, item)
                elif "x" in item and server.feed in ("sip", "delayed_sip"):
                    item["x"] = rng.choice(_SIP_EXCHANGES)
                items.append(item)
            payload, text = server.pack(items)
            await self.emit(ws, state, payload, not text)

    def item(self, rng, channel, symbol, prices: Walk, seq, t) -> dict:
        price = prices.next(symbol)
        d, tick, step = prices.decimals(symbol), prices.tick(symbol), prices.step(symbol)
        if channel == "trades":
            return {"T": "t", "S": symbol, "i": seq, "x": "V", "p": price,
                    "s": rng.randint(1, 500), "c": ["@"], "z": "C", "t": t}
        if channel == "quotes":
            return {"T": "q", "S": symbol, "bx": "V", "bp": round(price - tick, d),
                    "bs": rng.randint(1, 9), "ax": "V", "ap": round(price + tick, d),
                    "as": rng.randint(1, 9), "c": ["R"], "z": "C", "t": t}
        if channel == "news":
            return {"T": "n", "id": seq, "headline": f"{symbol} headline {seq}",
                    "summary": "", "author": "sim", "created_at": t, "updated_at": t,
                    "url": "https://example.test/news", "content": "",
                    "symbols": [symbol], "source": "sim"}
        code = _CODE_OF.get(channel, "b")
        return {"T": code, "S": symbol, "o": price,
                "h": round(price + 5 * step, d), "l": round(price - 5 * step, d), "c": price,
                "v": rng.randint(10, 900), "t": t - t % (_DAY if code == "d" else _MINUTE),
                "n": rng.randint(1, 40), "vw": price}

    def book(self, rng, symbol, prices: Walk, books, t) -> dict:
        """An order book message: the symbol's first is its full book (``r:true``), the
        next change a level or remove one (size 0)."""
        mid, d, unit = prices.mid(symbol), prices.decimals(symbol), prices.step(symbol)
        size = lambda: round(rng.uniform(0.01, 3), 4)  # noqa: E731
        if symbol not in books:
            bids = [round(mid - unit * i, d) for i in range(1, 4)]
            asks = [round(mid + unit * i, d) for i in range(1, 4)]
            books[symbol] = [bids, asks]
            return {"T": "o", "S": symbol, "t": t, "b": [{"p": p, "s": size()} for p in bids],
                    "a": [{"p": p, "s": size()} for p in asks], "r": True}
        side = rng.randrange(2)
        levels = books[symbol][side]
        if len(levels) > 1 and rng.random() < 0.3:
            change = {"p": levels.pop(rng.randrange(len(levels))), "s": 0}
        else:
            step = unit * rng.randint(1, 6)
            price = round(mid - step if side == 0 else mid + step, d)
            if price not in levels:
                levels.append(price)
            change = {"p": price, "s": size()}
        return {"T": "o", "S": symbol, "t": t, "b": [change] if side == 0 else [],
                "a": [change] if side == 1 else []}

    @staticmethod
    def crypto(rng, item: dict) -> dict:
        """A stock trade, quote or bar as the crypto feed has it: fractional sizes."""
        if item["T"] == "t":
            return {"T": "t", "S": item["S"], "p": item["p"], "s": round(item["s"] / 1000, 6),
                    "t": item["t"], "i": item["i"], "tks": rng.choice("BS")}
        if item["T"] == "q":
            return {"T": "q", "S": item["S"], "bp": item["bp"],
                    "bs": round(rng.uniform(0.01, 3), 8), "ap": item["ap"],
                    "as": round(rng.uniform(0.01, 3), 8), "t": item["t"]}
        return {**item, "v": round(item["v"] / 100, 8)}
