"""dfuse for EOSIO WebSocket simulator (PROTOCOLS.md section 5).

The token is checked from the ``token`` query parameter (missing:
``auth_token_missing_error``; not a three-part JWT or ``bad``: ``auth_invalid_token_error``;
either closes the connection). Binary frames are rejected. A chain produces
``rate`` blocks a second from block 300,000,000; ``get_action_traces`` listens from
``start_block`` (or the head) with one trace per account per block and ``progress``
after every block whose number is a multiple of ``with_progress``;
``get_head_info`` and ``get_table_rows`` too. More than 12 streams on a connection
gets ``ws_too_much_stream_error``. The server sends ``{"type":"ping"}`` every
``ping_interval`` (10 s). ``error=CODE`` answers the first request with that code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

from wsrec.venues.dfuse import _INVALID, AUTH_ERRORS, MAX_STREAMS, REQUESTS
from wsrec.sim.base import Simulator, compact

__all__ = ["DfuseSim", "GENESIS"]

GENESIS = 300_000_000


class DfuseSim(Simulator):
    venue = "dfuse"
    errors = {**{code: "refuses the token (closes the connection)" if code ==
                 "auth_invalid_token_error" else "an authentication error on the first request"
                 for code in sorted(AUTH_ERRORS)},
              **{code: "an invalid request" for code in sorted(_INVALID)},
              "internal_error": "a server error on the first request (the recorder retries)"}

    def head(self) -> int:
        return GENESIS + int(self.now() * self.options.rate)

    def check_request(self, connection, request):
        if urlsplit(request.path).path != "/v1/stream":
            return self.http_error(404, "not found")
        return None

    async def session(self, ws, state) -> None:
        token = parse_qs(urlsplit(ws.request.path).query).get("token", [""])[0]
        if not token:
            return await self.fatal(ws, state, "auth_token_missing_error",
                                    "required authorization token not found")
        if token == "bad" or token.count(".") != 2 or \
                self.options.error == "auth_invalid_token_error":
            return await self.fatal(ws, state, "auth_invalid_token_error",
                                    "unable to verify token")
        state.update(streams={})
        state["tasks"] = state["streams"]
        await self.serve_messages(ws, state, self.handle, self.pings(ws, state))

    async def pings(self, ws, state) -> None:
        interval = self.options.ping_interval or 10.0
        while True:
            await asyncio.sleep(interval)
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            await self.send(ws, state, compact({"type": "ping", "data": now}))

    async def fatal(self, ws, state, code, message) -> None:
        await self.send(ws, state, compact({"type": "error", "data": {
            "code": code, "trace_id": "0" * 32, "message": message}}))
        await ws.close(1008, code)

    async def error(self, ws, state, req_id, code, message) -> None:
        await self.send(ws, state, compact({"type": "error", "req_id": req_id, "data": {
            "code": code, "trace_id": "0" * 32, "message": message, "details": {}}}))

    async def handle(self, ws, state, message) -> None:
        if isinstance(message, bytes):
            return await self.fatal(ws, state, "invalid_message",
                                    "binary messages are not supported")
        try:
            msg = json.loads(message)
            if not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            return await self.error(ws, state, None, "invalid_message", "not a JSON object")
        rtype, req_id = msg.get("type"), msg.get("req_id")
        if self.options.error and not state.get("errored"):
            state["errored"] = True
            return await self.error(ws, state, req_id, self.options.error, "refused by --error")
        if rtype == "unlisten":
            target = (msg.get("data") or {}).get("req_id")
            task = state["streams"].pop(target, None)
            if task:
                task.cancel()
            return await self.send(ws, state, compact({"type": "unlistened", "req_id": req_id,
                                                       "data": {"success": task is not None}}))
        if rtype not in REQUESTS:
            return await self.error(ws, state, req_id, "unknown_message_type",
                                    f"unknown request type {rtype!r}")
        data = msg.get("data") or {}
        if rtype == "get_action_traces" and (not data.get("accounts") or msg.get("fetch")):
            return await self.error(ws, state, req_id, "invalid_request",
                                    "get_action_traces needs accounts and supports listen only")
        if rtype == "get_table_rows" and not all(data.get(k) for k in ("code", "scope", "table")):
            return await self.error(ws, state, req_id, "invalid_request",
                                    "code, scope and table are required")
        if len(state["streams"]) >= MAX_STREAMS:
            return await self.error(ws, state, req_id, "ws_too_much_stream_error",
                                    f"at most {MAX_STREAMS} streams per connection")
        start = msg.get("start_block")
        head = self.head()
        start = head if start is None else (head + start if start < 0 else start)
        state["streams"][req_id] = asyncio.create_task(
            self.stream(ws, state, rtype, req_id, data, start, int(msg.get("with_progress") or 0),
                        bool(msg.get("fetch")), bool(msg.get("listen"))))

    async def stream(self, ws, state, rtype, req_id, data, block, progress, fetch, listen):
        try:
            if fetch and rtype == "get_table_rows":
                await self.send(ws, state, compact({"type": "table_snapshot", "req_id": req_id,
                                                    "data": {"rows": [{"key": "a", "json": {
                                                        "balance": "1.0000 EOS"}}]}}))
            if fetch and rtype == "get_head_info":
                await self.send(ws, state, compact(self.head_info(req_id, self.head())))
            if not listen:
                return
            await self.send(ws, state, compact({"type": "listening", "req_id": req_id,
                                                "data": {"next_block": block}}))
            async for _ in self.ticks():
                while block <= self.head():
                    await self.block(ws, state, rtype, req_id, data, block, progress)
                    block += 1
        except Exception:  # noqa: BLE001 - the session is over
            return

    async def block(self, ws, state, rtype, req_id, data, block, progress) -> None:
        block_id = f"{block:08x}" + f"{block * 2654435761 % (1 << 96):024x}" * 2
        if rtype == "get_action_traces":
            for account in str(data["accounts"]).split("|"):
                await self.emit(ws, state, compact({"type": "action_trace", "req_id": req_id,
                                                    "data": {
                    "block_num": block, "block_id": block_id,
                    "block_time": "2026-11-18T11:06:40.500", "trx_id": f"{block:064x}",
                    "idx": 0, "trace": {"receipt": {"receiver": account},
                                        "act": {"account": account, "name": "transfer",
                                                "data": {"quantity": "1.0000 EOS"}}}}}))
        elif rtype == "get_head_info":
            await self.emit(ws, state, compact(self.head_info(req_id, block)))
        elif rtype == "get_table_rows":
            await self.emit(ws, state, compact({"type": "table_delta", "req_id": req_id,
                                                "data": {"block_num": block, "step": "new",
                                                         "dbop": {"op": "upd",
                                                                  "table": data["table"]}}}))
        if progress and block % progress == 0:
            await self.send(ws, state, compact({"type": "progress", "req_id": req_id,
                                                "data": {"block_num": block,
                                                         "block_id": block_id}}))

    @staticmethod
    def head_info(req_id, block) -> dict:
        return {"type": "head_info", "req_id": req_id, "data": {
            "last_irreversible_block_num": block - 330, "head_block_num": block,
            "head_block_id": f"{block:064x}", "head_block_time": "2026-11-18T11:06:40.500",
            "head_block_producer": "eosproducer1"}}
