"""Alpaca market data stream simulator (PROTOCOLS.md section 1).

Welcome on connect; auth by message within ``auth_timeout`` (404 after) or by upgrade
headers; any non-empty key and secret are accepted unless ``error`` is 402; the
whole subscription set in every ack; data arrays that sometimes batch several
messages of mixed types and symbols; msgpack with Timestamp extensions when the
client sends ``Content-Type: application/msgpack`` (required on option feeds: 412).
Errors: 400 bad syntax or symbol, 401 not authenticated, 403 already authenticated,
404 auth timeout, 405 symbol limit, 406 connection limit, 410 channel not on this
feed, 413 ``*`` on option quotes; ``error=CODE`` sends CODE after the welcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re

import msgpack

from wsrec.venues.alpaca import FEEDS, OPTION_FEEDS, TYPES
from wsrec.sim.base import Simulator, compact

__all__ = ["AlpacaSim"]

_PATHS = {"/" + path: feed for feed, (path, _, _) in FEEDS.items()}
_SYMBOL = re.compile(r"^[A-Z0-9./*:-]{1,32}$")
_CHANNEL_OF = {v: k for k, v in TYPES.items()}
_MESSAGES = {400: "invalid syntax", 401: "not authenticated", 402: "auth failed",
             403: "already authenticated", 404: "auth timeout", 405: "symbol limit exceeded",
             406: "connection limit exceeded", 407: "slow client",
             409: "insufficient subscription", 410: "invalid subscribe action for this feed",
             411: "insufficient scope",
             412: "option messages are only available in MsgPack format",
             413: "star subscription is not allowed for option quotes",
             500: "internal error"}
_ALL_LISTS = ["trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds",
              "corrections", "cancelErrors"]
_EPOCH = 1_795_000_000_000_000_000


class AlpacaSim(Simulator):
    venue = "alpaca"
    errors = {str(code): text for code, text in _MESSAGES.items()}

    def check_request(self, connection, request):
        if request.path.split("?")[0] not in _PATHS:
            return self.http_error(404, f"no feed at {request.path}")
        return None

    async def session(self, ws, state) -> None:
        request = ws.request
        feed = _PATHS[request.path.split("?")[0]]
        packed = request.headers.get("Content-Type", "").lower() == "application/msgpack"
        state.update(feed=feed, packed=packed, authed=False, subs={}, task=None)
        await self.control(ws, state, {"T": "success", "msg": "connected"})
        if self.active > self.options.max_connections:
            return await self.error(ws, state, 406)
        if feed in OPTION_FEEDS and not packed:
            return await self.error(ws, state, 412)
        err = self.options.error
        if err and err.isdigit() and int(err) not in (402,):
            return await self.error(ws, state, int(err))
        key = request.headers.get("APCA-API-KEY-ID")
        if key is not None:
            secret = request.headers.get("APCA-API-SECRET-KEY")
            if not key or not secret or err == "402":
                return await self.error(ws, state, 402)
            state["authed"] = True
            await self.control(ws, state, {"T": "success", "msg": "authenticated"})
        deadline = asyncio.get_running_loop().time() + self.options.auth_timeout
        try:
            while True:
                timeout = None if state["authed"] else \
                    deadline - asyncio.get_running_loop().time()
                if timeout is not None and timeout <= 0:
                    return await self.error(ws, state, 404)
                message = await self.recv(ws, state, timeout)
                if message is None:
                    return await self.error(ws, state, 404)
                if await self.handle(ws, state, message) is False:
                    return
        finally:
            if state["task"] is not None:
                state["task"].cancel()

    async def handle(self, ws, state, message) -> bool | None:
        try:
            if isinstance(message, bytes):
                msg = msgpack.unpackb(message)
            else:
                msg = json.loads(message)
        except Exception:  # noqa: BLE001
            return await self.error(ws, state, 400, close=False)
        if not isinstance(msg, dict) or not isinstance(msg.get("action"), str):
            return await self.error(ws, state, 400, close=False)
        action = msg["action"]
        if action == "auth":
            if state["authed"]:
                return await self.error(ws, state, 403, close=False)
            if not msg.get("key") or not msg.get("secret") or self.options.error == "402":
                return await self.error(ws, state, 402)
            state["authed"] = True
            await self.control(ws, state, {"T": "success", "msg": "authenticated"})
            return None
        if action in ("subscribe", "unsubscribe"):
            if not state["authed"]:
                return await self.error(ws, state, 401, close=False)
            return await self.subscribe(ws, state, action, msg)
        return await self.error(ws, state, 400, close=False)

    async def subscribe(self, ws, state, action, msg) -> None:
        _, allowed, _ = FEEDS[state["feed"]]
        subs: dict[str, set] = state["subs"]
        changes = {k: v for k, v in msg.items() if k != "action"}
        for channel, symbols in changes.items():
            if channel not in allowed:
                return await self.error(ws, state, 410, close=False)
            if not isinstance(symbols, list) or not all(
                    isinstance(s, str) and _SYMBOL.match(s) for s in symbols):
                return await self.error(ws, state, 400, close=False)
            if state["feed"] in OPTION_FEEDS and channel == "quotes" and "*" in symbols:
                return await self.error(ws, state, 413, close=False)
        new = {c: set(s) for c, s in subs.items()}
        for channel, symbols in changes.items():
            target = new.setdefault(channel, set())
            if action == "subscribe":
                target.update(symbols)
            else:
                target.difference_update(symbols)
        distinct = {s for c in ("trades", "quotes") for s in new.get(c, ()) if s != "*"}
        if len(distinct) > self.options.max_symbols:
            return await self.error(ws, state, 405, close=False)
        subs.clear()
        subs.update(new)
        ack = {"T": "subscription"}
        if state["feed"] == "news":
            ack["news"] = sorted(subs.get("news", ()))
        else:
            for name in allowed if state["feed"] not in (
                    "test", "iex", "sip", "delayed_sip") else _ALL_LISTS:
                if name in ("corrections", "cancelErrors"):
                    ack[name] = sorted(subs.get("trades", ()) | subs.get(name, set()))
                else:
                    ack[name] = sorted(subs.get(name, ()))
        await self.control(ws, state, ack)
        if state["task"] is None:
            state["task"] = asyncio.create_task(self.stream(ws, state))
        return None

    # -- output ----------------------------------------------------------------------------

    def pack(self, state, items: list[dict]) -> tuple[bytes, bool]:
        if state["packed"]:
            def convert(item):
                out = dict(item)
                for key in ("t", "created_at", "updated_at"):
                    if key in out and isinstance(out[key], int):
                        out[key] = msgpack.Timestamp.from_unix_nano(out[key])
                return out
            return msgpack.packb([convert(i) for i in items]), True
        def text(item):
            out = dict(item)
            for key in ("t", "created_at", "updated_at"):
                if key in out and isinstance(out[key], int):
                    out[key] = _rfc3339(out[key])
            return out
        return compact([text(i) for i in items]), False

    async def control(self, ws, state, msg: dict) -> None:
        payload, binary = self.pack(state, [msg])
        await self.send(ws, state, payload, binary)

    async def error(self, ws, state, code: int, close: bool = True) -> bool:
        await self.control(ws, state, {"T": "error", "code": code, "msg": _MESSAGES[code]})
        if close:
            await ws.close(1008 if code != 404 else 1000, _MESSAGES[code])
            return False
        return None

    async def stream(self, ws, state) -> None:
        rng = state["rng"]
        prices: dict[str, float] = {}
        seq = 0
        async for _ in self.ticks():
            pairs = [(c, s) for c, syms in state["subs"].items() for s in syms
                     if c in _CHANNEL_OF or c == "news"]
            pairs = [(c, s) for c, s in pairs if c not in ("corrections", "cancelErrors",
                                                             "statuses", "lulds")]
            if not pairs:
                continue
            items = []
            for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
                channel, symbol = rng.choice(pairs)
                if symbol == "*":
                    symbol = rng.choice(["AAPL", "MSFT", "FAKEPACA"])
                seq += 1
                items.append(self.item(rng, channel, symbol, prices, seq))
            payload, binary = self.pack(state, items)
            try:
                await self.emit(ws, state, payload, binary)
            except Exception:  # noqa: BLE001 - the session ends; so does its stream
                return

    def item(self, rng, channel, symbol, prices, seq) -> dict:
        price = prices.get(symbol, 100 + (sum(map(ord, symbol)) % 400))
        price = round(price * (1 + rng.gauss(0, 0.0005)), 2)
        prices[symbol] = price
        t = _EPOCH + int(self.now() * 1e9)
        if channel == "trades":
            return {"T": "t", "S": symbol, "i": seq, "x": "V", "p": price,
                    "s": rng.randint(1, 500), "c": ["@"], "z": "C", "t": t}
        if channel == "quotes":
            return {"T": "q", "S": symbol, "bx": "V", "bp": round(price - 0.01, 2),
                    "bs": rng.randint(1, 9), "ax": "V", "ap": round(price + 0.01, 2),
                    "as": rng.randint(1, 9), "c": ["R"], "z": "C", "t": t}
        if channel == "news":
            return {"T": "n", "id": seq, "headline": f"{symbol} headline {seq}",
                    "summary": "", "author": "sim", "created_at": t, "updated_at": t,
                    "url": "https://example.test/news", "content": "",
                    "symbols": [symbol], "source": "sim"}
        if channel == "orderbooks":
            return {"T": "o", "S": symbol, "t": t, "b": [{"p": price - 1, "s": 1.5}],
                    "a": [{"p": price + 1, "s": 2.0}], "r": seq == 1}
        code = _CHANNEL_OF.get(channel, "b")
        return {"T": code, "S": symbol, "o": price, "h": round(price + 0.5, 2),
                "l": round(price - 0.5, 2), "c": price, "v": rng.randint(10, 900),
                "t": t - t % 60_000_000_000, "n": rng.randint(1, 40), "vw": price}


def _rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"
