"""Vega data node stream simulator (PROTOCOLS.md section 3).

Each path under ``/api/v2/stream/`` is its own stream; unknown paths get HTTP 404.
Filters come from the query (repeated keys for lists); an unknown filter or a
missing required one (``candleId``) ends the stream with a gRPC InvalidArgument
error frame. ``accounts``, ``orders`` and ``positions`` begin with a snapshot in
pages of 50 (``lastPage`` on the last). Client messages are ignored.
``error=CODE`` sends an error frame with that gRPC code and ends the stream.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

from wsrec.venues.vega import PATHS, PREFIX
from wsrec.sim.base import Simulator, compact

__all__ = ["VegaSim", "MARKETS"]

MARKETS = ["0570e3ba31dda99bcaa78cf7c32fe97f3ec93c7a87ae6efd41fc524defa1bef2",
           "2a9a5c2d1e4f2b2f5d6e9a0c4f8b7a6d5c4b3a2918171615141312111009080f",
           "f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff00"]
_SNAPSHOT = {"accounts": "accounts", "orders": "orders", "positions": "positions"}
_PAGE = 50
_TS = 1_795_000_000_000_000_000


class VegaSim(Simulator):
    venue = "vega"
    #: gRPC status codes
    errors = {"1": "Cancelled", "2": "Unknown", "3": "InvalidArgument", "4": "DeadlineExceeded",
              "5": "NotFound", "6": "AlreadyExists", "7": "PermissionDenied",
              "8": "ResourceExhausted", "9": "FailedPrecondition", "10": "Aborted",
              "11": "OutOfRange", "12": "Unimplemented", "13": "Internal", "14": "Unavailable",
              "15": "DataLoss", "16": "Unauthenticated"}

    def check_request(self, connection, request):
        path = urlsplit(request.path).path.strip("/")
        if not path.startswith(PREFIX + "/") or path[len(PREFIX) + 1:] not in PATHS:
            return self.http_error(404, f"no stream at /{path}")
        return None

    async def session(self, ws, state) -> None:
        parts = urlsplit(ws.request.path)
        path = parts.path.strip("/")[len(PREFIX) + 1:]
        query = parse_qsl(parts.query)
        filters, _ = PATHS[path]
        reader = asyncio.create_task(self.ignore(ws, state))
        try:
            bad = [k for k, _ in query if k not in filters]
            if bad:
                return await self.fail(ws, state, 3, f"unknown filter {bad[0]}")
            if path == "candle/data" and not any(k == "candleId" for k, _ in query):
                return await self.fail(ws, state, 3, "candleId is required")
            if self.options.error:
                return await self.fail(ws, state, int(self.options.error), "refused by --error")
            markets = [v for k, v in query if k in ("marketIds", "marketId")] or MARKETS
            await self.stream(ws, state, path, markets)
        finally:
            reader.cancel()

    async def ignore(self, ws, state) -> None:
        while True:
            await self.recv(ws, state)

    async def fail(self, ws, state, code: int, message: str) -> None:
        await self.send(ws, state, compact({"error": {"code": code, "message": message,
                                                      "details": [{"code": 10000 + code,
                                                                   "message": message}]}}))
        await ws.close(1000)

    async def stream(self, ws, state, path, markets) -> None:
        rng = state["rng"]
        key = _SNAPSHOT.get(path)
        if key:
            items = [self.item(rng, path, rng.choice(markets), i)
                     for i in range(rng.randint(60, 130))]
            for start in range(0, len(items), _PAGE):
                page = {key: items[start:start + _PAGE]}
                if start + _PAGE >= len(items):
                    page["lastPage"] = True
                await self.send(ws, state, compact({"result": {"snapshot": page}}))
        n = 0
        async for _ in self.ticks():
            n += 1
            market = rng.choice(markets)
            item = self.item(rng, path, market, n)
            if key:
                body = {"updates": {key: [item]}}
            elif path == "trades":
                body = {"trades": [item]}
            elif path.startswith("markets/depth"):
                update = dict(item, sequenceNumber=str(n), previousSequenceNumber=str(n - 1))
                body = {"marketDepth": [item]} if path == "markets/depth" else \
                    {"update": [update]}
            elif path == "markets/data":
                body = {"marketData": [item]}
            else:
                body = {path.replace("/", "_"): item}
            await self.emit(ws, state, compact({"result": body}))

    def item(self, rng, path, market, n) -> dict:
        price = str(rng.randint(90_000, 110_000))
        return {"id": f"{rng.getrandbits(128):032x}", "marketId": market, "price": price,
                "size": str(rng.randint(1, 50)), "side": rng.choice([1, 2]),
                "timestamp": str(_TS + n * 1_000_000), "seq": n}
