"""Hyperliquid WebSocket simulator (PROTOCOLS.md section 2).

The protocol is ``wsrec.venues.hyperliquid.HyperliquidServer``'s (a ``post`` is answered
with an empty ``info`` response); this adds the idle close (a connection sent nothing
for ``idle_timeout`` seconds is closed) and data for every subscription. ``error=TEXT``
answers the first valid subscription with that error text. Prices walk from each coin's
level (``wsrec.sim.base.PRICE_LEVELS``: BTC near 90,000, ETH near 3,000, ...) in its
decimals. Times (``time``, a candle's
``t``) are the simulator's clock less a few ms of latency.
"""

from __future__ import annotations

import asyncio

from wsrec.venues.hyperliquid import SUBSCRIPTIONS, HyperliquidServer
from wsrec.sim.base import Simulator, Walk, compact

__all__ = ["HyperliquidSim"]


class HyperliquidSim(Simulator):
    venue = "hyperliquid"
    server = HyperliquidServer
    errors = None   # error=TEXT: any text, as the server's error messages are

    def make_server(self, request) -> HyperliquidServer:
        server = HyperliquidServer(request.path, request.headers, post_response={
            "type": "info", "payload": {"type": "ok", "data": None}})
        if self.options.error:   # the first valid subscription gets this error text
            problem, errored = server.problem, []

            def refuse_once(sub):
                found = problem(sub)
                if found is None and not errored and sub not in server.subs:
                    errored.append(True)
                    return self.options.error
                return found
            server.problem = refuse_once
        return server

    async def send(self, ws, state, payload, binary=False):
        state["last_send"] = asyncio.get_running_loop().time()
        await super().send(ws, state, payload, binary)

    def background(self, ws, state) -> list:
        state["last_send"] = asyncio.get_running_loop().time()
        return [self.idle_watch(ws, state)]

    async def idle_watch(self, ws, state) -> None:
        loop = asyncio.get_running_loop()
        while (left := state["last_send"] + self.options.idle_timeout - loop.time()) > 0:
            await asyncio.sleep(left)
        await ws.close(1000, "idle")

    def update(self, ws, state) -> None:
        if state["server"].subs and "stream" not in state["tasks"]:
            state["tasks"]["stream"] = self.spawn(self.stream(ws, state))

    async def stream(self, ws, state) -> None:
        rng, subs = state["rng"], state["server"].subs
        prices = Walk(rng, sigma=0.0004)
        tid = 1000
        async for _ in self.ticks():
            if subs:
                tid += 1
                payload = self.frame(rng, rng.choice(subs), prices, tid,
                                     self.exchange_ns(state) // 1_000_000)
                if payload is not None:
                    await self.emit(ws, state, payload)

    def frame(self, rng, sub, prices: Walk, tid, now) -> bytes | None:
        """A data frame of subscription ``sub`` at exchange time ``now`` (ms)."""
        t = sub["type"]
        coin = sub.get("coin", "BTC")
        px, step, tick = prices.next(coin), prices.step(coin), prices.tick(coin)
        fmt = lambda p: prices.format(coin, p)  # noqa: E731
        level = lambda p: {"px": fmt(p), "sz": f"{rng.uniform(0.01, 9):.5f}",  # noqa: E731
                           "n": rng.randint(1, 30)}
        if t == "trades":
            data = [{"coin": coin, "side": rng.choice("AB"), "px": fmt(px),
                     "sz": f"{rng.uniform(0.0001, 2):.5f}", "time": now,
                     "hash": "0x" + f"{rng.getrandbits(128):032x}", "tid": tid,
                     "users": ["0x" + f"{rng.getrandbits(80):020x}",
                               "0x" + f"{rng.getrandbits(80):020x}"]}]
        elif t == "l2Book":
            data = {"coin": coin, "time": now,
                    "levels": [[level(px - i * step) for i in range(1, 4)],
                               [level(px + i * step) for i in range(1, 4)]]}
        elif t == "bbo":
            data = {"coin": coin, "time": now, "bbo": [level(px - tick), level(px + tick)]}
        elif t == "candle":
            data = {"t": now - now % 60000, "T": now - now % 60000 + 59999, "s": coin,
                    "i": sub.get("interval", "1m"), "o": fmt(px), "c": fmt(px),
                    "h": fmt(px + 5 * step), "l": fmt(px - 5 * step), "v": "12.5", "n": 42}
        elif t == "allMids":
            data = {"mids": {c: prices.format(c, p) for c, p in prices.prices.items()}}
        else:
            _, channel = SUBSCRIPTIONS[t]
            return compact({"channel": channel, "data": {"user": sub.get("user"),
                                                         "isSnapshot": False, "time": now}})
        return compact({"channel": SUBSCRIPTIONS[t][1], "data": data})
