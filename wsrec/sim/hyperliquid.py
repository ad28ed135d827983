"""Hyperliquid WebSocket simulator (PROTOCOLS.md section 2).

Subscriptions are acknowledged with the normalised subscription echoed
(``subscriptionResponse``); a duplicate gets ``Already subscribed``; an unknown type,
a missing argument or a malformed request gets ``{"channel":"error",...}``;
``{"method":"ping"}`` gets ``{"channel":"pong"}``. The server closes a connection it
has sent nothing to for ``idle_timeout`` seconds. ``error=TEXT`` answers the first
subscription with that error text.
"""

from __future__ import annotations

import asyncio
import json

from wsrec.venues.hyperliquid import INTERVALS, SUBSCRIPTIONS
from wsrec.sim.base import Simulator, compact

__all__ = ["HyperliquidSim"]

_DEFAULTS = {"l2Book": {"nSigFigs": None, "mantissa": None}}
_START_MS = 1_795_000_000_000


class HyperliquidSim(Simulator):
    venue = "hyperliquid"
    errors = None   # error=TEXT: any text, as the server's error messages are

    def check_request(self, connection, request):
        if request.path.split("?")[0] != "/ws":
            return self.http_error(404, "not found")
        return None

    async def send(self, ws, state, payload, binary=False):
        state["last_send"] = asyncio.get_running_loop().time()
        await super().send(ws, state, payload, binary)

    async def session(self, ws, state) -> None:
        state.update(subs=[], last_send=asyncio.get_running_loop().time())
        await self.serve_messages(ws, state, self.handle, self.idle_watch(ws, state))

    async def idle_watch(self, ws, state) -> None:
        loop = asyncio.get_running_loop()
        while True:
            left = state["last_send"] + self.options.idle_timeout - loop.time()
            if left <= 0:
                await ws.close(1000, "idle")
                return
            await asyncio.sleep(left)

    async def error(self, ws, state, text: str) -> None:
        await self.send(ws, state, compact({"channel": "error", "data": text}))

    async def handle(self, ws, state, message) -> None:
        try:
            msg = json.loads(message)
            method = msg["method"]
        except (ValueError, TypeError, KeyError):
            return await self.error(ws, state, "Error parsing JSON into valid websocket "
                                               f"request: {str(message)[:100]}")
        if method == "ping":
            return await self.send(ws, state, b'{"channel":"pong"}')
        if method == "post":
            rid = msg.get("id")
            if not isinstance(rid, int):
                return await self.error(ws, state, "Post request missing id")
            return await self.send(ws, state, compact(
                {"channel": "post", "data": {"id": rid, "response": {
                    "type": "info", "payload": {"type": "ok", "data": None}}}}))
        if method not in ("subscribe", "unsubscribe"):
            return await self.error(ws, state, f"Unknown method: {method}")
        sub = msg.get("subscription")
        problem = self.invalid(sub)
        if problem is None and self.options.error and method == "subscribe" \
                and not state.get("errored"):
            state["errored"] = True
            problem = self.options.error
        if problem:
            return await self.error(ws, state, f"Invalid subscription {json.dumps(sub)}: "
                                               f"{problem}")
        normal = {**_DEFAULTS.get(sub["type"], {}), **sub}
        if method == "subscribe":
            if normal in state["subs"]:
                return await self.error(ws, state, f"Already subscribed: {compact(sub).decode()}")
            state["subs"].append(normal)
        else:
            if normal not in state["subs"]:
                return await self.error(ws, state, f"Already unsubscribed: "
                                                   f"{compact(sub).decode()}")
            state["subs"].remove(normal)
        await self.send(ws, state, compact({"channel": "subscriptionResponse",
                                            "data": {"method": method, "subscription": normal}}))
        if "stream" not in state["tasks"]:
            state["tasks"]["stream"] = asyncio.create_task(self.stream(ws, state))

    @staticmethod
    def invalid(sub) -> str | None:
        if not isinstance(sub, dict) or sub.get("type") not in SUBSCRIPTIONS:
            return "unknown subscription type"
        args, _ = SUBSCRIPTIONS[sub["type"]]
        extra = set(sub) - set(args) - {"type"}
        if extra:
            return f"unexpected field(s) {', '.join(sorted(extra))}"
        for required in ("coin", "user", "interval"):
            if required in args and required not in ("interval",) and not sub.get(required):
                return f"missing {required}"
        if sub["type"] == "candle" and sub.get("interval") not in INTERVALS:
            return "invalid interval"
        if "coin" in sub and not str(sub["coin"]).replace("-", "").isalnum():
            return "invalid coin"
        return None

    async def stream(self, ws, state) -> None:
        rng = state["rng"]
        prices: dict[str, float] = {}
        tid = 1000
        try:
            async for _ in self.ticks():
                if not state["subs"]:
                    continue
                sub = rng.choice(state["subs"])
                tid += 1
                payload = self.frame(rng, sub, prices, tid)
                if payload is not None:
                    await self.emit(ws, state, payload)
        except Exception:  # noqa: BLE001 - the session is over
            return

    def frame(self, rng, sub, prices, tid) -> bytes | None:
        t = sub["type"]
        coin = sub.get("coin", "BTC")
        px = prices.get(coin, 10 + sum(map(ord, coin)) * 37.0)
        px = round(px * (1 + rng.gauss(0, 0.0004)), 1)
        prices[coin] = px
        now = _START_MS + int(self.now() * 1000)
        level = lambda p: {"px": f"{p:.1f}", "sz": f"{rng.uniform(0.01, 9):.5f}",  # noqa: E731
                           "n": rng.randint(1, 30)}
        if t == "trades":
            data = [{"coin": coin, "side": rng.choice("AB"), "px": f"{px:.1f}",
                     "sz": f"{rng.uniform(0.0001, 2):.5f}", "time": now,
                     "hash": "0x" + f"{rng.getrandbits(128):032x}", "tid": tid,
                     "users": ["0x" + f"{rng.getrandbits(80):020x}",
                               "0x" + f"{rng.getrandbits(80):020x}"]}]
        elif t == "l2Book":
            data = {"coin": coin, "time": now,
                    "levels": [[level(px - i) for i in range(1, 4)],
                               [level(px + i) for i in range(1, 4)]]}
        elif t == "bbo":
            data = {"coin": coin, "time": now, "bbo": [level(px - 0.5), level(px + 0.5)]}
        elif t == "candle":
            data = {"t": now - now % 60000, "T": now - now % 60000 + 59999, "s": coin,
                    "i": sub.get("interval", "1m"), "o": f"{px:.1f}", "c": f"{px:.1f}",
                    "h": f"{px + 1:.1f}", "l": f"{px - 1:.1f}", "v": "12.5", "n": 42}
        elif t == "allMids":
            data = {"mids": {c: f"{p:.1f}" for c, p in (prices or {"BTC": px}).items()}}
        else:
            _, channel = SUBSCRIPTIONS[t]
            return compact({"channel": channel, "data": {"user": sub.get("user"),
                                                         "isSnapshot": False, "time": now}})
        return compact({"channel": SUBSCRIPTIONS[t][1], "data": data})
