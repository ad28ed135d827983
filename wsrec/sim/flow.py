"""Flow access node WebSocket simulator (PROTOCOLS.md section 4).

The protocol is ``wsrec.venues.flow.FlowServer``'s; this adds a chain of ``rate``
blocks a second from height 100,000,000, each subscription streamed from its
``start_block_height`` (or the head) with no height skipped, protocol pings every
``ping_interval`` (9 s) with a close when no pong comes within ``pong_timeout``, and
the drop (no close frame) of a connection with no subscription idle for
``inactivity``. ``error=CODE`` answers the first subscribe with CODE.
"""

from __future__ import annotations

import asyncio

from wsrec.venues.flow import FlowServer
from wsrec.sim.base import Simulator, compact

__all__ = ["FlowSim", "GENESIS"]

GENESIS = 100_000_000


class FlowSim(Simulator):
    venue = "flow"
    server = FlowServer
    errors = {"400": "invalid message format or arguments", "404": "subscription not found",
              "429": "maximum number of subscriptions reached",
              "500": "internal server error (the recorder retries)"}
    ping_interval_default = 9.0
    protocol_pings = True

    def head(self) -> int:
        return GENESIS + int(self.now() * self.options.rate)

    def make_server(self, request) -> FlowServer:
        server = FlowServer(request.path, request.headers)
        if self.options.error:   # the first subscribe gets this code
            problem, errored = server.problem, []

            def refuse_once(msg):
                if not errored:
                    errored.append(True)
                    return int(self.options.error), "refused by --error"
                return problem(msg)
            server.problem = refuse_once
        return server

    def background(self, ws, state) -> list:
        return [self.inactivity(ws, state)]

    async def inactivity(self, ws, state) -> None:
        loop = asyncio.get_running_loop()
        state["last_rx"] = loop.time()
        while True:
            await asyncio.sleep(min(1.0, self.options.inactivity / 4))
            if not state["server"].subs and \
                    loop.time() - state["last_rx"] > self.options.inactivity:
                ws.transport.abort()  # dropped without a close frame
                return

    def update(self, ws, state) -> None:
        state["last_rx"] = asyncio.get_running_loop().time()
        subs, tasks = state["server"].subs, state["tasks"]
        for sid in set(tasks) - set(subs):   # unsubscribed
            tasks.pop(sid).cancel()
        for sid in set(subs) - set(tasks):   # subscribed: stream from the start height
            start = subs[sid]["arguments"].get("start_block_height")
            start = int(start) if start is not None else self.head()
            tasks[sid] = self.spawn(self.stream(ws, state, sid, subs[sid]["topic"], start))

    async def stream(self, ws, state, sid, topic, height) -> None:
        index = 0
        async for _ in self.ticks():
            while height <= self.head():   # catch up without skipping a height
                await self.emit(ws, state, compact({
                    "subscription_id": sid, "topic": topic,
                    "payload": self.payload(topic, height, index)}))
                height += 1
                index += 1

    @staticmethod
    def payload(topic, height, index) -> dict:
        block_id = f"{height * 2654435761 % (1 << 64):016x}" * 4
        stamp = f"2026-11-18T11:{(height // 60) % 60:02d}:{height % 60:02d}.000000000Z"
        if topic == "block_digests":
            return {"block_id": block_id, "height": str(height), "timestamp": stamp}
        if topic == "block_headers":
            return {"id": block_id, "parent_id": f"{(height - 1):064x}", "height": str(height),
                    "timestamp": stamp, "parent_voter_signature": "c0ffee"}
        if topic == "blocks":
            return {"header": {"id": block_id, "height": str(height), "timestamp": stamp},
                    "payload": {"collection_guarantees": [], "block_seals": []}}
        return {"block_id": block_id, "block_height": str(height), "block_timestamp": stamp,
                "events": [], "message_index": str(index)}
