"""Flow access node WebSocket simulator (PROTOCOLS.md section 4).

The protocol is ``wsrec.venues.flow.FlowServer``'s; this adds a chain from height
100,000,000 (the head when the simulator starts) that grows at mainnet's block pace, a
block every 0.8 to 1.3 s (``BLOCK_TIME``), or at ``rate`` blocks a second when the
options name a rate, by the simulator's clock; each subscription is streamed from its
``start_block_height`` (or the head) with no height skipped, a backlog at once, then
each block as it is made (looked for ``rate`` times a second), protocol pings every
``ping_interval`` (9 s) with a close when no pong comes within ``pong_timeout``, and
the drop (no close frame) of a connection with no subscription idle for
``inactivity``. ``error=CODE`` answers the first subscribe with CODE.

Payloads are the access node's (``engine/access/rest/websockets`` in flow-go): block
timestamps from the simulator's clock, when each block was made less a few ms, so never
after the block is first sent; an events message for every block, with a FlowToken
withdrawal and deposit (or, with an ``event_types`` filter, events of those types) in
every third block, each payload base64 JSON-CDC, and ``events`` left out when there are
none; ``message_index`` a number counting each subscription's messages from 0.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt

from wsrec.venues.flow import FlowServer
from wsrec.sim.base import Simulator, compact

__all__ = ["FlowSim", "GENESIS", "BLOCK_TIME"]

GENESIS = 100_000_000
#: mainnet's block pace (ns): a block about every 1.05 s, each 0.8 to 1.3 s after the last
BLOCK_TIME = (1_050_000_000, 125_000_000)
#: the events of a block with events, when a subscription names no event types
_EVENT_TYPES = ("A.1654653399040a61.FlowToken.TokensWithdrawn",
                "A.1654653399040a61.FlowToken.TokensDeposited")


class FlowSim(Simulator):
    venue = "flow"
    server = FlowServer
    errors = {"400": "invalid message format or arguments", "404": "subscription not found",
              "429": "maximum number of subscriptions reached",
              "500": "internal server error (the recorder retries)"}
    ping_interval_default = 9.0
    protocol_pings = True
    block_time = BLOCK_TIME

    def head(self) -> int:
        """The last block made, by the simulator's clock."""
        return GENESIS + self.head_offset()

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
            tasks[sid] = self.spawn(self.stream(ws, state, sid, subs[sid]["topic"], start,
                                                subs[sid]["arguments"].get("event_types")))

    async def stream(self, ws, state, sid, topic, height, event_types=None) -> None:
        index = 0
        async for _ in self.ticks():
            while height <= self.head():   # catch up without skipping a height
                await self.emit(ws, state, compact({
                    "subscription_id": sid, "topic": topic,
                    "payload": self.payload(topic, height, index, event_types)}))
                height += 1
                index += 1

    def payload(self, topic, height, index, event_types=None) -> dict:
        block_id = _block_id(height)
        stamp = _timestamp(self.block_ns(height - GENESIS))
        if topic == "block_digests":
            return {"block_id": block_id, "height": str(height), "timestamp": stamp}
        if topic == "block_headers":
            return {"id": block_id, "parent_id": _block_id(height - 1), "height": str(height),
                    "timestamp": stamp, "parent_voter_signature": "c0ffee"}
        if topic == "blocks":
            return {"header": {"id": block_id, "parent_id": _block_id(height - 1),
                               "height": str(height), "timestamp": stamp,
                               "parent_voter_signature": "c0ffee"},
                    "payload": {"collection_guarantees": [], "block_seals": []},
                    "_expandable": {}, "block_status": "BLOCK_SEALED"}
        if topic == "account_statuses":
            return {"block_id": block_id, "height": str(height), "account_events": {},
                    "message_index": index}
        body = {"block_id": block_id, "block_height": str(height), "block_timestamp": stamp}
        if height % 3 == 0:
            body["events"] = _events(height, event_types or _EVENT_TYPES)
        return {**body, "message_index": index}


def _block_id(height: int) -> str:
    return f"{height * 2654435761 % (1 << 64):016x}" * 4


def _timestamp(ns: int) -> str:
    """A block's time (ns since the epoch) in Go's RFC 3339 with ns (trailing zeros
    dropped)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    at = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    digits = f"{fraction:09d}".rstrip("0")
    return at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "") + "Z"


def _events(height: int, types) -> list:
    """One transaction's events of these types, payloads base64 JSON-CDC."""
    tx = f"{height * 40503 % (1 << 64):016x}" * 4
    out = []
    for i, event_type in enumerate(types):
        fields = [{"value": {"value": f"{height % 1000}.00100000", "type": "UFix64"},
                   "name": "amount"},
                  {"value": {"value": {"value": f"0x{height % (1 << 64):016x}",
                                       "type": "Address"}, "type": "Optional"},
                   "name": "from" if event_type.endswith("Withdrawn") else "to"}]
        cdc = compact({"value": {"id": event_type, "fields": fields}, "type": "Event"})
        out.append({"type": event_type, "transaction_id": tx, "transaction_index": "0",
                    "event_index": str(i), "payload": base64.b64encode(cdc + b"\n").decode()})
    return out
