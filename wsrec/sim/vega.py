"""Vega data node stream simulator (PROTOCOLS.md section 3).

The protocol is ``wsrec.venues.vega.VegaServer``'s (the path picks the stream, the query
its filters); this adds the data: ``accounts``, ``orders`` and ``positions`` begin with
a snapshot in pages of 50 (``lastPage`` on the last), then updates at ``rate``.
``error=CODE`` sends an error frame with that gRPC code and ends the stream.
"""

from __future__ import annotations

from wsrec.venues.vega import GRPC_CODES, VegaServer
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
        return [self.stream(ws, state, state["server"].stream, state["server"].markets or MARKETS)]

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
