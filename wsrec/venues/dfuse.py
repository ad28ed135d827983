"""dfuse for EOSIO: typed requests with req_id, progress markers, start_block resume.

Protocol (venue-docs/dfuse.md, PROTOCOLS.md section 5): the JWT goes in the URL
(``?token=``); requests are ``{"type":...,"req_id":...,"listen":true,
"with_progress":N,"data":{...}}``; responses are ``{"type":...,"req_id":...,"data":...}``.
``progress`` arrives after each N-th block's data; after a reconnect the same request
is sent again with ``start_block`` = last progress block + 1 (blocks after that
progress arrive twice; both copies are stored). At most 12 streams per connection.
The server's ``{"type":"ping"}`` messages are data frames and are recorded as such.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from .base import NONE, Request, Step, Stream, UsageError, Venue, endpoint, split_params

__all__ = ["Dfuse", "DfuseStream", "REQUESTS", "MAX_STREAMS", "AUTH_ERRORS"]

HOSTS = {"mainnet": "mainnet.eos.dfuse.io", "kylin": "kylin.eos.dfuse.io",
         "jungle": "jungle.eos.dfuse.io", "worbli": "worbli.eos.dfuse.io"}
MAX_STREAMS = 12
TOKEN_ENV = "DFUSE_API_TOKEN"
AUTH_ERRORS = {"auth_token_missing_error", "auth_invalid_token_error",
               "auth_token_expired_error", "auth_invalid_credentials_error"}
_INVALID = {"invalid_request", "invalid_message", "bad_request", "ws_too_much_stream_error",
            "unknown_message_type"}

#: request type -> data fields
REQUESTS = {
    "get_action_traces": ("accounts", "receivers", "action_names", "with_inline_traces",
                          "with_dbops", "with_ramops", "with_dtrxops", "with_tableops"),
    "get_table_rows": ("code", "scope", "table", "json"),
    "get_transaction_lifecycle": ("id",),
    "get_head_info": (),
}
_BOOLS = {"with_inline_traces", "with_dbops", "with_ramops", "with_dtrxops", "with_tableops",
          "json"}

_TYPE = re.compile(rb'"type":"([^"]+)"')
_REQ = re.compile(rb'"req_id":"([^"]*)"')


class DfuseStream(Stream):
    def __init__(self, url: str, token: str, requests: list[dict]):
        self.url = url
        self.token = token
        self.requests = requests
        self.progress: dict[str, int] = {}   # req_id -> last progress block_num
        self.pending = 0

    def secrets(self) -> list[str]:
        return [self.token] if self.token else []

    def opening(self) -> list[bytes]:
        self.pending = len(self.requests)
        out = []
        for req in self.requests:
            msg = dict(req)
            last = self.progress.get(req["req_id"])
            if last is not None:
                msg["start_block"] = last + 1
            out.append(json.dumps(msg, separators=(",", ":")).encode())
        return out

    def receive(self, payload: bytes, text: bool):
        t = _TYPE.search(payload)
        kind = t.group(1).decode() if t else None
        r = _REQ.search(payload)
        symbols = (r.group(1).decode(),) if r else NONE
        channels = (kind,) if kind else NONE
        if kind == "progress":
            msg = json.loads(payload)
            block = (msg.get("data") or {}).get("block_num")
            if isinstance(block, int) and symbols:
                self.progress[symbols[0]] = block
            return channels, symbols, None
        if kind == "listening":
            self.pending -= 1
            return channels, symbols, Step(ready=True) if self.pending == 0 else None
        if kind == "error":
            return channels, symbols, self._error(payload)
        return channels, symbols, None

    def _error(self, payload: bytes) -> Step:
        try:
            data = json.loads(payload).get("data") or {}
        except ValueError:
            data = {}
        code, message = data.get("code", "?"), data.get("message", "")
        what = f"dfuse error {code}: {message}"
        if code in AUTH_ERRORS:
            return Step(fatal=f"{what} (check {TOKEN_ENV})")
        if code in _INVALID:
            return Step(fatal=what)
        return Step(retry=what)


class Dfuse(Venue):
    name = "dfuse"
    title = "dfuse for EOSIO WebSocket API"
    endpoints = {n: f"wss://{h}/v1/stream?token=<JWT>" for n, h in HOSTS.items()}
    channels = {t: f"request {t} (data: {', '.join(f) or 'none'})" for t, f in REQUESTS.items()}
    default_channels = ["get_action_traces"]
    params = {"accounts": "pipe or comma list (get_action_traces; or use --symbols)",
              "receivers": "get_action_traces receivers", "action_names": "action names",
              "code": "table contract (get_table_rows)", "scope": "table scope",
              "table": "table name", "id": "transaction id (get_transaction_lifecycle)",
              "start_block": "first block (negative: relative to head)",
              "with_progress": "progress every N blocks (default 10)",
              "irreversible_only": "true for irreversible blocks only",
              "network": f"one of {', '.join(HOSTS)} (default mainnet)",
              **{b: "true/false" for b in _BOOLS}}
    credentials = {TOKEN_ENV: "the JWT itself (from dfuse's auth service)"}
    watchdog = 30.0      # the server pings every 10 s
    heartbeat = 20.0

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        types = self.check_channels(request)
        token = "sim.jwt.token" if request.sim else request.env.get(TOKEN_ENV)
        if not token:
            raise UsageError(f"dfuse: set {TOKEN_ENV} to your JWT, or record from the "
                             f"simulator with --sim")
        progress = int(request.param("with_progress", 10))
        reqs = []
        for rtype in types:
            base = {"type": rtype, "listen": True}
            if rtype in ("get_table_rows", "get_head_info", "get_transaction_lifecycle"):
                base["fetch"] = True
            if progress > 0 and rtype != "get_head_info":
                base["with_progress"] = progress
            if request.param("start_block") is not None:
                base["start_block"] = int(request.param("start_block"))
            if request.flag("irreversible_only"):
                base["irreversible_only"] = True
            data = {}
            for field in REQUESTS[rtype]:
                value = request.param(field)
                if value is not None:
                    data[field] = request.flag(field) if field in _BOOLS else value
            if rtype == "get_action_traces":
                accounts = request.symbols or split_params(request.param("accounts"))
                if not accounts:
                    raise UsageError("dfuse: get_action_traces needs accounts "
                                     "(--symbols eosio.token)")
                for account in accounts:  # one stream each, spread over connections
                    reqs.append({**base, "req_id": f"r{len(reqs)}",
                                 "data": {**data, "accounts": account}})
                continue
            if rtype == "get_table_rows" and not all(data.get(k) for k in
                                                     ("code", "scope", "table")):
                raise UsageError("dfuse: get_table_rows needs --param code=, scope=, table=")
            reqs.append({**base, "req_id": f"r{len(reqs)}", "data": data})
        network = request.param("network", "mainnet")
        if network not in HOSTS:
            raise UsageError(f"dfuse: unknown network {network!r}")
        base_url = endpoint(request.url, f"wss://{HOSTS[network]}/v1/stream", "v1/stream")
        url = base_url + ("&" if "?" in base_url else "?") + "token=" + quote(token, safe="")
        return [DfuseStream(url, token, reqs[i:i + MAX_STREAMS])
                for i in range(0, len(reqs), MAX_STREAMS)]
