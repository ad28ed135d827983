"""dfuse for EOSIO: typed requests with req_id, progress markers, start_block resume.

Protocol (venue-docs/dfuse.md, PROTOCOLS.md section 5): the JWT goes in the URL
(``?token=``); requests are ``{"type":...,"req_id":...,"listen":true,
"with_progress":N,"data":{...}}``; responses are ``{"type":...,"req_id":...,"data":...}``.
``progress`` arrives after each N-th block's data; after a reconnect the same request
is sent again with ``start_block`` = last progress block + 1 (blocks after that
progress arrive twice; both copies are stored). At most 12 streams per connection.
The server's ``{"type":"ping"}`` messages are data frames and are recorded as such.

Exchange time (``exch_ts``): the first ``block_time`` (action traces, transaction
lifecycles), else ``head_block_time`` (head info), else a ping's time. EOSIO times have
no zone (``2019-05-04T00:00:00.500``): UTC. Progress, table deltas and snapshots carry
none: null.

Normalized tables (``wsrec.venues.normalize``):

* blocks: one row per frame of ``action_trace`` and ``progress`` (``block_num``,
  ``block_id``) and ``head_info`` (the head block: ``head_block_num``,
  ``head_block_id``), so a block appears once per frame that names it.
* actions: ``action_trace``, one row per frame (the matching action; inline traces
  that match come as frames of their own): ``type`` is ``act.name``, ``account`` the
  contract ``act.account``, ``tx_id`` the ``trx_id``, ``data`` ``act.data`` as JSON
  text.

Sequence checks (``check_sequence``), per ``req_id`` on a connection: progress comes
when ``block_num % N == 0``, so consecutive markers are N blocks apart (N, the request's
``with_progress``, is learnt as the greatest common divisor of the markers' block
numbers, so a jump before N is known can pass unseen); a larger jump is a gap of that
many blocks beyond N. dfuse sends at most one marker per 250 ms, so while a stream
catches up on past blocks (``start_block``) such jumps may be markers left out rather
than blocks. Action traces must not go back to an earlier block, nor to a block a
marker has passed. ``listening`` starts a request's checks afresh.
"""

from __future__ import annotations

import json
import re
from math import gcd
from urllib.parse import parse_qs, quote, urlsplit

from wsrec.errors import UsageError
from wsrec.lists import split_list
from wsrec.venues.base import (NONE, UNAVAILABLE, Request, Server, Step, Stream, Venue,
                               compact, echo, endpoint, integer, loads, shards)

__all__ = ["Dfuse", "DfuseStream", "DfuseServer", "REQUESTS", "REPLIES", "BLOCK_DATA",
           "MAX_STREAMS", "AUTH_ERRORS", "INVALID_ERRORS", "request_accounts", "trace_accounts",
           "delta_account", "EXCH_TIME", "NORMALIZED", "SEQUENCED"]

HOSTS = {"mainnet": "mainnet.eos.dfuse.io", "kylin": "kylin.eos.dfuse.io",
         "jungle": "jungle.eos.dfuse.io", "worbli": "worbli.eos.dfuse.io"}
MAX_STREAMS = 12
TOKEN_ENV = "DFUSE_API_TOKEN"
AUTH_ERRORS = {"auth_token_missing_error", "auth_invalid_token_error",
               "auth_token_expired_error", "auth_invalid_credentials_error"}
#: errors that say the request itself is wrong
INVALID_ERRORS = {"invalid_request", "invalid_message", "bad_request",
                  "ws_too_much_stream_error", "unknown_message_type"}

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
#: request type -> the types of the messages that answer it
REPLIES = {"get_action_traces": {"action_trace", "progress"},
           "get_table_rows": {"table_snapshot", "table_delta", "progress"},
           "get_head_info": {"head_info"},
           "get_transaction_lifecycle": {"transaction_lifecycle"}}
#: the replies that carry a block's data (delivered again after a resume)
BLOCK_DATA = ("action_trace", "table_delta")

#: where a frame's exchange time is (see the module docstring)
EXCH_TIME = ((rb'"block_time":"(?P<t>[^"]{1,40})"', "rfc3339"),
             (rb'"head_block_time":"(?P<t>[^"]{1,40})"', "rfc3339"),
             (rb'^\{"type":"ping","data":"(?P<t>[^"]{1,40})"', "rfc3339"))
#: normalized table -> the message types (channels) whose frames carry its rows
NORMALIZED = {"blocks": ("action_trace", "progress", "head_info"), "actions": ("action_trace",)}
#: the message types ``check_sequence`` reads
SEQUENCED = ("listening", "action_trace", "progress")

_TYPE = re.compile(rb'"type":\s*"([^"]+)"')
_REQ = re.compile(rb'"req_id":\s*"([^"]*)"')
# action_trace: the action's contract and the receiver, anchored on their parent objects so
# that "account" keys inside ``act.data`` are never taken for the contract
_ACT_ACCOUNT = re.compile(rb'"act":\s*\{\s*"account":\s*"([^"\\]*)"')
_RECEIVER = re.compile(rb'"receipt":\s*\{\s*"receiver":\s*"([^"\\]*)"')
_INLINE = b'"inline_traces"'
# table_delta: the contract of the row, a key of ``dbop`` ahead of its nested old/new rows
_DBOP_ACCOUNT = re.compile(rb'"dbop":\s*\{[^{}]*?"(?:account|code)":\s*"([^"\\]*)"')


class DfuseStream(Stream):
    def __init__(self, url: str, token: str, requests: list[dict]):
        self.url = url
        self.token = token
        self.requests = requests
        self.accounts = {r["req_id"]: request_accounts(r) for r in requests}  # req_id -> symbols
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
            out.append(compact(msg))
        return out

    def receive(self, payload: bytes, text: bool):
        """Channels: the message ``type``. Symbols: EOSIO accounts, as ``--symbols`` means
        them: an action trace's contract and receiver, a table delta's contract, and for
        the other messages of a request (listening, progress, ...) that request's
        accounts. The ``req_id`` is read for bookkeeping only."""
        t = _TYPE.search(payload)
        kind = t.group(1).decode() if t else None
        channels = (kind,) if kind else NONE
        if kind == "action_trace":
            return channels, trace_accounts(payload), None
        r = _REQ.search(payload)
        req_id = r.group(1).decode() if r else None
        symbols = self.accounts.get(req_id, NONE) if req_id is not None else NONE
        if kind == "table_delta":
            return channels, symbols or delta_account(payload), None
        if kind == "progress":
            msg = json.loads(payload)
            block = (msg.get("data") or {}).get("block_num")
            if isinstance(block, int) and req_id is not None:
                self.progress[req_id] = block
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
        if code in INVALID_ERRORS:
            return Step(fatal=what)
        return Step(retry=what)


def request_accounts(request: dict) -> tuple:
    """The accounts a request is about: ``get_action_traces`` its ``accounts`` (pipe
    separated), ``get_table_rows`` its contract (``code``); none for the others."""
    data = request.get("data") or {}
    if request.get("type") == "get_action_traces":
        accounts = str(data.get("accounts") or "").replace(",", "|").split("|")
        return tuple(dict.fromkeys(a.strip() for a in accounts if a.strip()))
    if request.get("type") == "get_table_rows" and data.get("code"):
        return (str(data["code"]),)
    return NONE


def trace_accounts(payload: bytes) -> tuple:
    """``(act.account, receipt.receiver)`` of an ``action_trace`` message, de-duplicated.

    Both are found by regex when the trace's keys come in dfuse's order: ``receipt``, then
    ``act``, then ``inline_traces``. The first matches are then the top-level trace's:
    not an inline trace's, and not something inside ``act.data``, which follows the
    receipt. Any other layout is parsed as JSON, for that message only."""
    receipt = _RECEIVER.search(payload)
    act = _ACT_ACCOUNT.search(payload, receipt.end()) if receipt is not None else None
    if act is not None:
        if payload.find(_INLINE, 0, act.start()) < 0:   # both ahead of inline_traces
            return tuple(dict.fromkeys(x for x in (act.group(1).decode(),
                                                   receipt.group(1).decode()) if x))
    try:
        trace = (json.loads(payload).get("data") or {}).get("trace") or {}
        act = trace.get("act") or {}
        receipt = trace.get("receipt") or {}
        found = (act.get("account"), receipt.get("receiver") or trace.get("receiver"))
    except (ValueError, AttributeError):
        return NONE
    return tuple(dict.fromkeys(x for x in found if isinstance(x, str) and x))


def delta_account(payload: bytes) -> tuple:
    """The contract of a ``table_delta`` message's ``dbop`` (its ``account``), found by
    regex ahead of the nested rows, else parsed as JSON (for that message only)."""
    m = _DBOP_ACCOUNT.search(payload)
    if m is not None and m.group(1):
        return (m.group(1).decode(),)
    try:
        dbop = (json.loads(payload).get("data") or {}).get("dbop") or {}
        account = dbop.get("account") or dbop.get("code") or \
            str(dbop.get("path") or "").partition("/")[0]
    except (ValueError, AttributeError):
        return NONE
    return (account,) if isinstance(account, str) and account else NONE


class Dfuse(Venue):
    name = "dfuse"
    title = "dfuse for EOSIO WebSocket API"
    symbols = "EOSIO accounts for get_action_traces (one request each)"
    example_symbols = ("eosio", "eosio.token")
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
    exch_time = EXCH_TIME
    normalized = NORMALIZED
    sequenced = SEQUENCED

    def normalize(self, table, message, channel, state):
        kind, data = message["type"], message["data"]
        if table == "blocks":
            if kind == "head_info":
                return [(None, _block_num(data["head_block_num"]), data["head_block_id"])]
            return [(None, _block_num(data["block_num"]), data["block_id"])]
        if table == "actions":
            trace = data["trace"]
            act = trace["act"]
            action_data = act.get("data")
            return [(None, _block_num(data["block_num"]), data["block_id"],
                     data.get("trx_id") or trace.get("trx_id"), act["name"], act["account"],
                     None if action_data is None else
                     json.dumps(action_data, separators=(",", ":"), ensure_ascii=False))]
        return ()

    def check_sequence(self, message, channel, state):
        """Progress jumps and action traces going back, per ``req_id`` (see the module
        docstring); ``state``: req_id -> ``_Progress``."""
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            return []
        kind, req_id, data = message.get("type"), message.get("req_id"), message["data"]
        if kind == "listening":
            state.pop(req_id, None)
            return []
        block = data.get("block_num")
        if not integer(block):
            return []
        chain = state.get(req_id)
        if chain is None:
            chain = state[req_id] = _Progress()
        if kind == "progress":
            return chain.progress(f"req_id {req_id}", block)
        if kind == "action_trace":
            return chain.trace(f"req_id {req_id}", block)
        return []

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        self.check_channels(request)
        token = request.env.get(TOKEN_ENV)
        if not token:
            raise UsageError(f"dfuse: set {TOKEN_ENV} to your JWT, or record from the "
                             f"simulator with --sim")
        reqs = self.requests(request)
        network = request.param("network", "mainnet")
        if network not in HOSTS:
            raise UsageError(f"dfuse: unknown network {network!r}")
        base_url = endpoint(request.url, f"wss://{HOSTS[network]}/v1/stream", "v1/stream")
        url = base_url + ("&" if "?" in base_url else "?") + "token=" + quote(token, safe="")
        return shards([DfuseStream(url, token, reqs[i:i + MAX_STREAMS])
                       for i in range(0, len(reqs), MAX_STREAMS)])

    def requests(self, request: Request) -> list[dict]:
        """The stream requests a request sends (one per get_action_traces account)."""
        types = self.check_channels(request)
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
                accounts = request.symbols or split_list(request.param("accounts"), seps=",|")
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
        return reqs


# -- normalized tables and sequence checks -------------------------------------------------

def _block_num(value) -> int:
    return value if type(value) is int else int(value)


class _Progress:
    """One request's progress markers and action traces on a connection."""

    __slots__ = ("marker", "step", "block")

    def __init__(self):
        self.marker: int | None = None   # the last progress block_num
        self.step = 0                    # the gcd of the markers' block numbers
        self.block: int | None = None    # the last action trace's block_num

    def progress(self, req: str, block: int) -> list:
        last, self.marker = self.marker, block
        self.step = gcd(self.step, block)
        if last is None or block == last:
            return []
        if block < last:
            return [(f"{req}: progress at block {block} after block {last}", last - block)]
        expected = last + self.step
        if block > expected:
            return [(f"{req}: progress at block {block}, expected {expected} "
                     f"(step {self.step})", block - expected)]
        return []

    def trace(self, req: str, block: int) -> list:
        last, self.block = self.block, block
        if last is not None and block < last:
            return [(f"{req}: action trace of block {block} after one of block {last}",
                     last - block + 1)]
        if self.marker is not None and block <= self.marker:
            return [(f"{req}: action trace of block {block} after progress at block "
                     f"{self.marker}", self.marker - block + 1)]
        return []


# -- the server side -----------------------------------------------------------------------

_REQ_ID = re.compile(rb'"req_id":\s*"[^"\\]*"')
_FLAGS = ("fetch", "listen", "irreversible_only")
_NUMBERS = ("start_block", "with_progress")


class DfuseServer(Server):
    """dfuse's side of one connection (PROTOCOLS.md section 5).

    Served at ``/v1/stream``; the JWT is the ``token`` query parameter (missing or not
    accepted by ``accept``: an auth error that closes the connection; ``auth=False``
    takes any). A valid request is answered ``listening`` (from ``head``, or its
    ``start_block``; negative: relative to ``head``), a fetch-only request with nothing;
    a request of any other shape gets ``invalid_message``, ``invalid_request`` or
    ``unknown_message_type`` and changes nothing; a 13th stream:
    ``ws_too_much_stream_error``; ``unlisten`` ends one. ``requests``: req_id -> the
    request. A data frame goes to every request it answers (``REPLIES``) that is about
    its accounts (``get_action_traces``: its ``accounts``; ``get_table_rows``: its
    ``code``), with that request's ``req_id``. ``offered``: a request of a type it
    doesn't carry, about accounts outside those it carries, or with other ``data`` than
    its own gets ``invalid_request`` and changes nothing.
    """

    def __init__(self, path="/", headers=None, *, auth: bool = True,
                 offered: Request | None = None):
        super().__init__(path, headers, offered=offered)
        self.carried = None if offered is None else Dfuse().requests(offered)
        self.auth = auth
        self.requests: dict[str, dict] = {}
        self.head = 0
        self.ready = False

    paths = ("/v1/stream?token=JWT",)
    #: TOKEN: a placeholder for the JWT (a replay takes any token; ``wsrec sim`` puts in
    #: one it accepts)
    default_path = "/v1/stream?token=TOKEN"

    @classmethod
    def refuse(cls, path):
        return None if urlsplit(path).path == "/v1/stream" else "not found"

    def accept(self, token: str) -> bool:
        return token.count(".") == 2   # a three-part JWT

    def error(self, req_id, code: str, message: str, close: bool = False) -> None:
        data = {"code": code, "trace_id": "0" * 32, "message": message, "details": {}}
        self.reply({"type": "error", "req_id": req_id, "data": data} if isinstance(req_id, str)
                   else {"type": "error", "data": data})
        if close:
            self.close = (1008, code)

    def internal_error(self) -> None:
        self.error(None, "internal_error", "internal error")

    def start(self) -> None:
        if not self.auth:
            return
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        if not token:
            self.error(None, "auth_token_missing_error",
                       "required authorization token not found", close=True)
        elif not self.accept(token):
            self.error(None, "auth_invalid_token_error", "unable to verify token", close=True)

    def problem(self, msg: dict, rtype: str) -> tuple[str, str] | None:
        """Why a request is refused: ``(code, message)``, or None."""
        if rtype not in REQUESTS:
            return "unknown_message_type", f"unknown request type {echo(rtype, 100)}"
        for name in _FLAGS:
            if name in msg and not isinstance(msg[name], bool):
                return "invalid_request", f"{name} must be a boolean"
        for name in _NUMBERS:
            if name in msg and msg[name] is not None and not integer(msg[name]):
                return "invalid_request", f"{name} must be an integer"
        data = {} if msg.get("data") is None else msg["data"]
        if not isinstance(data, dict):
            return "invalid_request", "data must be an object"
        for name, value in data.items():
            if not isinstance(value, bool if name in _BOOLS else str):
                return "invalid_request", \
                    f"data.{name[:100]} must be a {'boolean' if name in _BOOLS else 'string'}"
        if rtype == "get_action_traces" and (not data.get("accounts") or msg.get("fetch")):
            return "invalid_request", "get_action_traces needs accounts and supports listen only"
        if rtype == "get_table_rows" and not all(data.get(k) for k in ("code", "scope", "table")):
            return "invalid_request", "code, scope and table are required"
        if self.carried is not None and not self.carries(rtype, data):
            return "invalid_request", f"{rtype} with this data is {UNAVAILABLE}"
        if msg.get("req_id", "") not in self.requests and len(self.requests) >= MAX_STREAMS:
            return "ws_too_much_stream_error", f"at most {MAX_STREAMS} streams per connection"
        return None

    def carries(self, rtype: str, data: dict) -> bool:
        """Whether ``offered`` carries a request of this type and data: the same data,
        with get_action_traces accounts among those carried."""
        accounts = set(request_accounts({"type": rtype, "data": data}))
        rest = {k: v for k, v in data.items() if k != "accounts"}
        for req in self.carried:
            if req["type"] == rtype and \
                    {k: v for k, v in req["data"].items() if k != "accounts"} == rest:
                accounts -= set(request_accounts(req))
                if not accounts:
                    return True
        return False

    def signature(self):
        return tuple((r, q["type"], q["accounts"]) for r, q in self.requests.items())

    def receive(self, message) -> None:
        if not isinstance(message, str):
            return self.error(None, "invalid_message", "binary messages are not supported")
        msg = loads(message)
        if not isinstance(msg, dict):
            return self.error(None, "invalid_message", "not a JSON object")
        rtype, req_id = msg.get("type"), msg.get("req_id")
        req_id = "" if req_id is None else req_id
        if not isinstance(req_id, str):
            return self.error(None, "invalid_message", "req_id must be a string")
        if not isinstance(rtype, str):
            return self.error(req_id, "invalid_message", "type must be a string")
        if rtype == "unlisten":
            data = msg.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("req_id"), str):
                return self.error(req_id, "invalid_request",
                                  "unlisten needs data.req_id, a string")
            found = self.requests.pop(data["req_id"], None)
            return self.reply({"type": "unlistened", "req_id": req_id,
                               "data": {"success": found is not None}})
        problem = self.problem(msg, rtype)
        if problem:
            return self.error(req_id, *problem)
        start = msg.get("start_block")
        start = self.head if start is None else max(0, self.head + start) if start < 0 else start
        self.requests[req_id] = {**msg, "req_id": req_id, "start_block": start,
                                 "accounts": request_accounts(msg)}
        if msg.get("listen") or not msg.get("fetch"):
            self.reply({"type": "listening", "req_id": req_id, "data": {"next_block": start}})
        self.ready = True

    def render(self, payload, text, channels, symbols):
        channel = channels[0] if len(channels) == 1 else None
        out = []
        for req_id, req in self.requests.items():
            if channel not in REPLIES[req["type"]]:
                continue
            if req["accounts"] and symbols and not set(req["accounts"]) & set(symbols):
                continue
            tag = b'"req_id":' + json.dumps(req_id).encode()
            out.append((_REQ_ID.sub(lambda m, tag=tag: tag, payload, count=1), True))
        return out
