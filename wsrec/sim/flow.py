"""Flow access node WebSocket simulator (PROTOCOLS.md section 4).

A chain produces ``rate`` blocks a second from height 100,000,000. Subscriptions are
validated strictly (unknown topic or argument, both start arguments, a missing
block_status, an id over 20 characters or already in use: 400; a 21st
subscription: 429), acknowledged, and streamed from ``start_block_height`` (or the
head) with no height skipped. Replies come in request order. The server sends
protocol pings every ``ping_interval`` (9 s) and closes when no pong comes within
``pong_timeout``; a connection with no subscription idle for ``inactivity`` is
dropped without a close frame. ``error=CODE`` answers the first subscribe with CODE.
"""

from __future__ import annotations

import asyncio
import json

from wsrec.venues.flow import MAX_SUBSCRIPTIONS, TOPICS
from wsrec.sim.base import Simulator, compact

__all__ = ["FlowSim", "GENESIS"]

GENESIS = 100_000_000
_BLOCK = {"block_digests", "block_headers", "blocks"}


class FlowSim(Simulator):
    venue = "flow"
    errors = {"400": "invalid message format or arguments", "404": "subscription not found",
              "429": "maximum number of subscriptions reached",
              "500": "internal server error (the recorder retries)"}
    ping_interval_default = 9.0
    protocol_pings = True

    def head(self) -> int:
        return GENESIS + int(self.now() * self.options.rate)

    def check_request(self, connection, request):
        if request.path.split("?")[0] != "/v1/ws":
            return self.http_error(404, "not found")
        return None

    async def session(self, ws, state) -> None:
        state.update(subs={}, next_id=0, last_rx=asyncio.get_running_loop().time())
        state["tasks"] = state["subs"]  # the subscriptions' streams end with the connection
        await self.serve_messages(ws, state, self.handle, self.inactivity(ws, state))

    async def inactivity(self, ws, state) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.options.inactivity / 4))
            if not state["subs"] and loop.time() - state["last_rx"] > self.options.inactivity:
                ws.transport.abort()  # dropped without a close frame
                return

    async def reply(self, ws, state, msg: dict) -> None:
        await self.send(ws, state, compact(msg))

    async def error(self, ws, state, sid, action, code, message) -> None:
        body = {"error": {"code": code, "message": message}, "action": action}
        if sid is not None:
            body = {"subscription_id": sid, **body}
        await self.reply(ws, state, body)

    async def handle(self, ws, state, message) -> None:
        state["last_rx"] = asyncio.get_running_loop().time()
        try:
            msg = json.loads(message)
            if not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            return await self.error(ws, state, None, None, 400, "invalid message format")
        action, sid = msg.get("action"), msg.get("subscription_id")
        if action == "list_subscriptions":
            subs = [{"subscription_id": s, "topic": t.topic, "arguments": t.arguments}
                    for s, t in state["subs"].items()]
            return await self.reply(ws, state, {"subscriptions": subs,
                                                "action": "list_subscriptions"})
        if action == "unsubscribe":
            task = state["subs"].pop(sid, None)
            if task is None:
                return await self.error(ws, state, sid, action, 404, "subscription not found")
            task.cancel()
            return await self.reply(ws, state, {"subscription_id": sid, "action": action})
        if action != "subscribe":
            return await self.error(ws, state, sid, action, 400, f"unknown action {action!r}")
        problem = self.invalid(msg, state)
        if problem:
            return await self.error(ws, state, sid, action, *problem)
        if sid is None:
            sid = f"{state['next_id']:x}"
            state["next_id"] += 1
        args = msg.get("arguments") or {}
        start = args.get("start_block_height")
        start = int(start) if start is not None else self.head()
        await self.reply(ws, state, {"subscription_id": sid, "action": "subscribe"})
        task = asyncio.create_task(self.stream(ws, state, sid, msg["topic"], start))
        task.topic, task.arguments = msg["topic"], args
        state["subs"][sid] = task

    def invalid(self, msg, state):
        sid, topic, args = msg.get("subscription_id"), msg.get("topic"), msg.get("arguments")
        if self.options.error and not state.get("errored"):
            state["errored"] = True
            return int(self.options.error), "refused by --error"
        if set(msg) - {"subscription_id", "action", "topic", "arguments"}:
            return 400, "unknown field in request"
        if sid is not None and (not isinstance(sid, str) or not sid or len(sid) > 20):
            return 400, "subscription_id must be 1 to 20 characters"
        if sid in state["subs"]:
            return 400, f"subscription_id {sid} is already in use"
        if topic not in TOPICS:
            return 400, f"unknown topic {topic!r}"
        args = args if args is not None else {}
        if not isinstance(args, dict) or set(args) - set(TOPICS[topic]):
            return 400, "unknown argument"
        if "start_block_id" in args and "start_block_height" in args:
            return 400, "only one of start_block_id and start_block_height may be given"
        if topic in _BLOCK and args.get("block_status") not in ("sealed", "finalized"):
            return 400, "block_status must be sealed or finalized"
        height = args.get("start_block_height")
        if height is not None and (not isinstance(height, str) or not height.isdigit()):
            return 400, "start_block_height must be a number in a string"
        if len(state["subs"]) >= MAX_SUBSCRIPTIONS:
            return 429, "maximum number of subscriptions reached"
        return None

    async def stream(self, ws, state, sid, topic, height) -> None:
        index = 0
        try:
            async for _ in self.ticks():
                while height <= self.head():   # catch up without skipping a height
                    await self.emit(ws, state, compact({
                        "subscription_id": sid, "topic": topic,
                        "payload": self.payload(topic, height, index)}))
                    height += 1
                    index += 1
        except Exception:  # noqa: BLE001 - the session is over
            return

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
