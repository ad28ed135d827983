"""dfuse for EOSIO WebSocket simulator (PROTOCOLS.md section 5).

The protocol is ``wsrec.venues.dfuse.DfuseServer``'s (the token in the ``token`` query
parameter: ``SimOptions.credentials``' token when it names one, else any three-part JWT
but ``bad``); this adds a chain of ``rate`` blocks a second from block 300,000,000 and
its data: ``get_action_traces`` streams one trace per account per block from
``start_block`` (or the head), with ``progress`` after every block whose number is a
multiple of ``with_progress``; ``get_head_info`` and ``get_table_rows`` too. The server
sends ``{"type":"ping"}`` every ``ping_interval`` (10 s). ``error=CODE`` answers the
first request with that code. Blocks are a block period (``1 / rate`` s) apart, timed
from the simulator's clock (each a few ms before it is first sent), their ``block_time``
in EOSIO's form (milliseconds, no zone: UTC); a ping's ``data`` is the clock's time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import quote

from wsrec.venues.dfuse import AUTH_ERRORS, INVALID_ERRORS, TOKEN_ENV, DfuseServer
from wsrec.sim.base import Simulator, compact

__all__ = ["DfuseSim", "GENESIS"]

GENESIS = 300_000_000


class DfuseSim(Simulator):
    venue = "dfuse"
    server = DfuseServer
    errors = {**{code: "refuses the token (closes the connection)" if code ==
                 "auth_invalid_token_error" else "an authentication error on the first request"
                 for code in sorted(AUTH_ERRORS)},
              **{code: "an invalid request" for code in sorted(INVALID_ERRORS)},
              "internal_error": "a server error on the first request (the recorder retries)"}
    sample_credentials = {TOKEN_ENV: "sim.jwt.token"}

    def client_path(self) -> str:
        """``/v1/stream?token=...`` with a token this simulator accepts."""
        token = (self.options.credentials or {}).get(TOKEN_ENV) or \
            self.sample_credentials[TOKEN_ENV]
        return self.server.default_path.replace("TOKEN", quote(token, safe=""))

    def head(self) -> int:
        return GENESIS + int(self.now() * self.rate)

    def make_server(self, request) -> DfuseServer:
        server = DfuseServer(request.path, request.headers)
        accept, problem, errored = server.accept, server.problem, []
        wanted = (self.options.credentials or {}).get(TOKEN_ENV)
        server.accept = lambda token: accept(token) and token != "bad" and \
            token == (wanted or token) and self.options.error != "auth_invalid_token_error"
        if self.options.error:   # the first request gets this code

            def refuse_once(msg, rtype):
                if not errored:
                    errored.append(True)
                    return self.options.error, "refused by --error"
                return problem(msg, rtype)
            server.problem = refuse_once
        return server

    def background(self, ws, state) -> list:
        return [self.pings(ws, state)]

    async def pings(self, ws, state) -> None:
        interval = self.options.ping_interval or 10.0
        while True:
            await asyncio.sleep(interval)
            seconds, ns = divmod(self.clock(), 1_000_000_000)
            now = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.") + f"{ns // 1000:06d}Z"
            await self.send(ws, state, compact({"type": "ping", "data": now}))

    async def answer(self, ws, state, message) -> bool:
        state["server"].head = self.head()   # where a request without start_block starts
        return await super().answer(ws, state, message)

    def update(self, ws, state) -> None:
        requests, tasks = state["server"].requests, state["tasks"]
        for req_id in list(tasks):   # unlistened, or asked again
            if requests.get(req_id) is not tasks[req_id].request:
                tasks.pop(req_id).cancel()
        for req_id in set(requests) - set(tasks):
            tasks[req_id] = self.spawn(self.stream(ws, state, requests[req_id]))
            tasks[req_id].request = requests[req_id]

    async def stream(self, ws, state, req):
        rtype, req_id, data = req["type"], req["req_id"], req.get("data") or {}
        block, progress = req["start_block"], int(req.get("with_progress") or 0)
        if req.get("fetch") and rtype == "get_table_rows":
            await self.send(ws, state, compact({"type": "table_snapshot", "req_id": req_id,
                                                "data": {"rows": [{"key": "a", "json": {
                                                    "balance": "1.0000 EOS"}}]}}))
        if req.get("fetch") and rtype == "get_head_info":
            await self.send(ws, state, compact(self.head_info(req_id, self.head())))
        if not req.get("listen"):
            return
        async for _ in self.ticks():
            while block <= self.head():
                await self.block(ws, state, rtype, req_id, data, block, progress)
                block += 1

    async def block(self, ws, state, rtype, req_id, data, block, progress) -> None:
        block_id = _block_id(block)
        if rtype == "get_action_traces":
            for account in str(data["accounts"]).split("|"):
                await self.emit(ws, state, compact({"type": "action_trace", "req_id": req_id,
                                                    "data": {
                    "block_num": block, "block_id": block_id,
                    "block_time": self.block_time(block), "trx_id": f"{block:064x}",
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

    def block_time(self, block: int) -> str:
        """A block's ``block_time``: EOSIO's form (milliseconds, no zone: UTC)."""
        seconds, ns = divmod(self.block_ns(block - GENESIS), 1_000_000_000)
        at = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns // 1_000_000:03d}"

    def head_info(self, req_id, block) -> dict:
        return {"type": "head_info", "req_id": req_id, "data": {
            "last_irreversible_block_num": block - 330, "head_block_num": block,
            "head_block_id": _block_id(block), "head_block_time": self.block_time(block),
            "head_block_producer": "eosproducer1"}}


def _block_id(block: int) -> str:
    """An EOSIO block id: the block number in its first 4 bytes."""
    return f"{block:08x}" + f"{block * 2654435761 % (1 << 96):024x}" * 2

