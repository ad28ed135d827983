"""Playing the venue for a client: what the replay WebSocket server says and sends.

An ``Emulator`` answers one client the way the recorded venue would (welcome, auth,
subscription acks, pongs, error replies) and decides, for each recorded frame, what that
client gets: nothing (not subscribed, or a control frame the server makes itself), the
recorded bytes, or a rewritten frame (an Alpaca array cut down to the subscribed
elements, a Flow or dfuse frame re-tagged with the client's own subscription id). The
server (``wsrec.replay.serve``) moves bytes; emulators never touch sockets, only the ``send``
callable they are given, and are tested with literal frames.

Client messages are checked for shape before anything is kept (lists of strings, dict
subscriptions with string fields, string ids): a message of any other shape gets the
venue's own error reply, as the venue's server would answer it, and changes nothing. A
bug that still raises in ``on_message`` is the server's to catch: it answers with
``internal_error()`` (the venue's generic error) and the client stays connected.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

import msgpack

from wsrec.store.lines import decode_msgpack, is_msgpack_session
from wsrec.store.session import Frame
from wsrec.timefmt import parse_time
from wsrec.venues.alpaca import STOCK_CHANNELS, TYPES
from wsrec.venues.dfuse import MAX_STREAMS, REQUESTS
from wsrec.venues.flow import MAX_SUBSCRIPTIONS, TOPICS
from wsrec.venues.hyperliquid import INTERVALS, SUBSCRIPTIONS
from wsrec.venues.vega import PREFIX

__all__ = ["Emulator", "emulator_for"]

Send = Callable[[bytes, bool], None]   # (payload, is_text)

_BAD = object()   # a client message that is not a JSON value


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _json(message):
    """A client's text message as a JSON value, or ``_BAD``: binary, not JSON (NaN and
    Infinity included), or nested deeper than the parser goes."""
    if not isinstance(message, str):
        return _BAD
    try:
        return json.loads(message, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _BAD


def _compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _echo(value, limit: int = 200) -> str:
    """A client's value quoted back in an error text, at most ``limit`` characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = repr(type(value).__name__)
    return text if len(text) <= limit else text[:limit] + "..."


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Emulator:
    """The base: every recorded inbound frame, as is; ready at once; client messages
    are ignored."""

    def __init__(self, send: Send, path: str = "/", headers=None, manifest=None):
        self.send = send
        self.path = path
        self.headers = headers or {}
        self.manifest = manifest or {}
        self.ready = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> None:
        """The connection is open (send a welcome here)."""
        self.ready.set()

    def on_message(self, message) -> None:
        """A client message (str or bytes)."""

    def internal_error(self) -> None:
        """Answer a message whose handling failed unexpectedly with the venue's generic
        error (nothing for a venue that takes no client messages)."""

    def render(self, frame: Frame) -> tuple[bytes, bool] | list | None:
        """What this client gets for a recorded frame: (payload, is_text), a list of
        them, or None."""
        if frame.dir != "in":
            return None
        return frame.payload, frame.kind == "text"


class _JsonEmulator(Emulator):
    """A venue where the client speaks first and the server answers in compact JSON."""

    def reply(self, obj) -> None:
        self.send(_compact(obj), True)

    def start(self) -> None:
        pass  # no greeting: the client's first message starts the conversation


# -- Alpaca -----------------------------------------------------------------------------

_CONTROL_ALPACA = {"success", "error", "subscription"}
_ALPACA_ERRORS = {400: "invalid syntax", 401: "not authenticated", 403: "already authenticated",
                  500: "internal error"}


class AlpacaEmulator(Emulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.packed = self.headers.get("Content-Type", "").lower() == "application/msgpack"
        self.recorded_packed = is_msgpack_session(self.manifest)
        self.subs: dict[str, set] = {}
        self.authed = bool(self.headers.get("APCA-API-KEY-ID"))

    def reply(self, msg: dict) -> None:
        if self.packed:
            self.send(msgpack.packb([msg]), False)
        else:
            self.send(_compact([msg]), True)

    def error(self, code: int) -> None:
        self.reply({"T": "error", "code": code, "msg": _ALPACA_ERRORS[code]})

    def internal_error(self) -> None:
        self.error(500)

    def start(self) -> None:
        self.reply({"T": "success", "msg": "connected"})
        if self.authed:
            self.reply({"T": "success", "msg": "authenticated"})

    @staticmethod
    def decode(message):
        """JSON text or a msgpack binary message (either, whatever the connection's
        format, as the venue takes both), or ``_BAD``."""
        if isinstance(message, str):
            return _json(message)
        try:
            return msgpack.unpackb(message)
        except (ValueError, TypeError, msgpack.UnpackException, RecursionError):
            return _BAD

    def on_message(self, message) -> None:
        msg = self.decode(message)
        if not isinstance(msg, dict) or not isinstance(msg.get("action"), str):
            return self.error(400)
        action = msg["action"]
        if action == "auth":
            if any(k in msg and not isinstance(msg[k], str) for k in ("key", "secret")):
                return self.error(400)
            if self.authed:
                return self.error(403)
            self.authed = True  # any credentials: this is a replay
            return self.reply({"T": "success", "msg": "authenticated"})
        if action not in ("subscribe", "unsubscribe"):
            return self.error(400)
        if not self.authed:
            return self.error(401)
        changes = {k: v for k, v in msg.items() if k != "action"}
        # every channel takes a list of symbols (strings): anything else is the
        # venue's "invalid syntax", and nothing of that message is applied
        if not all(isinstance(k, str) and _strings(v) for k, v in changes.items()):
            return self.error(400)
        with self.lock:
            for channel, symbols in changes.items():
                target = self.subs.setdefault(channel, set())
                (target.update if action == "subscribe" else target.difference_update)(symbols)
            ack = {"T": "subscription"}
            for name in STOCK_CHANNELS:
                ack[name] = sorted(self.subs.get(name, ()))
            for name in self.subs:
                ack.setdefault(name, sorted(self.subs[name]))
            if "trades" in self.subs:
                for name in ("corrections", "cancelErrors"):
                    ack[name] = sorted(set(ack[name]) | self.subs["trades"])
            self.reply(ack)  # under the lock: no frame of the new set goes out ahead of it
        self.ready.set()

    def wants(self, channel: str | None, symbol: str | None) -> bool:
        syms = self.subs.get(channel or "")
        return bool(syms) and ("*" in syms or symbol in syms)

    def render(self, frame: Frame):
        if frame.dir != "in" or not frame.channels or \
                set(frame.channels) & _CONTROL_ALPACA:
            return None
        with self.lock:
            whole = all(self.wants(c, s) for c in frame.channels for s in frame.symbols or
                        [None])
            if whole and self.packed == self.recorded_packed:
                return frame.payload, not self.packed
            if not any(self.wants(c, s) for c in frame.channels for s in frame.symbols or
                       [None]):
                return None
            items = decode_msgpack(frame.payload) if frame.kind == "binary" else \
                json.loads(frame.payload)
            keep = [i for i in items if isinstance(i, dict) and self.wants(
                TYPES.get(i.get("T"), i.get("T")),
                i.get("S") if "S" in i else next(iter(i.get("symbols") or []), None))]
        if not keep:
            return None
        if self.packed:
            return msgpack.packb([_to_msgpack(i) for i in keep]), False
        return _compact([_to_json(i) for i in keep]), True


def _to_json(item: dict) -> dict:
    from wsrec.timefmt import format_ns
    return {k: format_ns(v.to_unix_nano()) if isinstance(v, msgpack.Timestamp) else v
            for k, v in item.items()}


def _to_msgpack(item: dict) -> dict:
    out = {}
    for k, v in item.items():
        if k in ("t", "created_at", "updated_at") and isinstance(v, str):
            try:
                v = msgpack.Timestamp.from_unix_nano(parse_time(v))
            except ValueError:
                pass
        out[k] = v
    return out


# -- Hyperliquid -------------------------------------------------------------------------

_HL_NUMBERS = ("nSigFigs", "mantissa")


def _hyperliquid_problem(sub) -> str | None:
    """Why a subscription object is not one the venue takes (None: it is)."""
    if not isinstance(sub, dict) or not isinstance(sub.get("type"), str) or \
            sub["type"] not in SUBSCRIPTIONS:
        return "unknown subscription type"
    args, _ = SUBSCRIPTIONS[sub["type"]]
    extra = set(sub) - set(args) - {"type"}
    if extra:
        return f"unexpected field(s) {', '.join(sorted(extra))[:200]}"
    for name, value in sub.items():
        if name in _HL_NUMBERS:
            if value is not None and not _int(value):
                return f"{name} must be an integer"
        elif not isinstance(value, str):
            return f"{name} must be a string"
    if sub["type"] == "candle" and sub.get("interval") not in INTERVALS:
        return "invalid interval"
    return None


class HyperliquidEmulator(_JsonEmulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.subs: list[dict] = []

    def error(self, text: str) -> None:
        self.reply({"channel": "error", "data": text})

    def internal_error(self) -> None:
        self.error("Internal error")

    def on_message(self, message) -> None:
        msg = _json(message)
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            text = message if isinstance(message, str) else \
                message.decode("utf-8", "replace")
            return self.error(f"Error parsing JSON into valid websocket request: {text[:100]}")
        method = msg["method"]
        if method == "ping":
            return self.reply({"channel": "pong"})
        if method == "post":
            if not _int(msg.get("id")):
                return self.error("Post request missing id")
            return self.reply({"channel": "post", "data": {"id": msg["id"], "response": {
                "type": "error", "payload": "post requests are not replayed"}}})
        if method not in ("subscribe", "unsubscribe"):
            return self.error(f"Unknown method: {method[:100]}")
        sub = msg.get("subscription")
        problem = _hyperliquid_problem(sub)
        if problem:
            return self.error(f"Invalid subscription {_echo(sub)}: {problem}")
        with self.lock:
            if method == "subscribe":
                if sub in self.subs:
                    return self.error(f"Already subscribed: {_echo(sub)}")
                self.subs.append(sub)
            else:
                if sub not in self.subs:
                    return self.error(f"Already unsubscribed: {_echo(sub)}")
                self.subs.remove(sub)
            self.reply({"channel": "subscriptionResponse",  # under the lock: before any data
                        "data": {"method": method, "subscription": sub}})
        self.ready.set()

    def render(self, frame: Frame):
        if frame.dir != "in" or frame.channel in (None, "subscriptionResponse", "pong",
                                                  "error", "post"):
            return None
        with self.lock:
            for sub in self.subs:
                channel = SUBSCRIPTIONS[sub["type"]][1]
                if channel == frame.channel and (
                        "coin" not in sub or sub["coin"] in frame.symbols):
                    return frame.payload, True
        return None


# -- Vega --------------------------------------------------------------------------------

class VegaEmulator(Emulator):
    """The URL path and query pick the stream; nothing is said, client messages are
    ignored (the venue takes none)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        parts = urlsplit(self.path)
        self.stream = parts.path.strip("/")
        if self.stream.startswith(PREFIX + "/"):
            self.stream = self.stream[len(PREFIX) + 1:]
        self.markets = {v for k, v in parse_qsl(parts.query) if k in ("marketIds", "marketId")}

    def render(self, frame: Frame):
        if frame.dir != "in" or frame.channel != self.stream:
            return None
        if self.markets and frame.symbols and not self.markets & set(frame.symbols):
            return None
        return frame.payload, True


# -- Flow --------------------------------------------------------------------------------

_FLOW_ID = re.compile(rb'^\{"subscription_id":"[^"]*"')
_FLOW_BLOCK_TOPICS = {"block_digests", "block_headers", "blocks"}
_FLOW_LISTS = {"event_types", "addresses", "contracts", "account_addresses"}


def _flow_problem(msg: dict, subs: dict) -> tuple[int, str] | None:
    """Why a subscribe request is refused, as the access node answers it (None: valid)."""
    topic, args = msg.get("topic"), msg.get("arguments")
    if set(msg) - {"subscription_id", "action", "topic", "arguments"}:
        return 400, "unknown field in request"
    if msg.get("subscription_id") in subs:
        return 400, f"subscription_id {msg['subscription_id']} is already in use"
    if not isinstance(topic, str) or topic not in TOPICS:
        return 400, f"unknown topic {_echo(topic, 100)}"
    args = {} if args is None else args
    if not isinstance(args, dict) or set(args) - set(TOPICS[topic]):
        return 400, "unknown argument"
    for name, value in args.items():
        if not (_strings(value) if name in _FLOW_LISTS else isinstance(value, str)):
            return 400, f"invalid {name}"
    if "start_block_id" in args and "start_block_height" in args:
        return 400, "only one of start_block_id and start_block_height may be given"
    if topic in _FLOW_BLOCK_TOPICS and args.get("block_status") not in ("sealed", "finalized"):
        return 400, "block_status must be sealed or finalized"
    if not args.get("start_block_height", "0").isdigit():
        return 400, "start_block_height must be a number in a string"
    if len(subs) >= MAX_SUBSCRIPTIONS:
        return 429, "maximum number of subscriptions reached"
    return None


class FlowEmulator(_JsonEmulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.subs: dict[str, str] = {}   # client subscription_id -> topic
        self.next_id = 0

    def error(self, sid, action, code: int, message: str) -> None:
        body = {"error": {"code": code, "message": message},
                "action": action if isinstance(action, str) else None}
        if isinstance(sid, str):
            body = {"subscription_id": sid, **body}
        self.reply(body)

    def internal_error(self) -> None:
        self.error(None, None, 500, "internal error")

    def on_message(self, message) -> None:
        msg = _json(message)
        if not isinstance(msg, dict):
            return self.error(None, None, 400, "invalid message format")
        action, sid = msg.get("action"), msg.get("subscription_id")
        if sid is not None and (not isinstance(sid, str) or not sid or len(sid) > 20):
            return self.error(sid, action, 400, "subscription_id must be 1 to 20 characters")
        if action == "list_subscriptions":
            with self.lock:
                subs = [{"subscription_id": k, "topic": t, "arguments": {}}
                        for k, t in self.subs.items()]
            return self.reply({"subscriptions": subs, "action": action})
        if action == "unsubscribe":
            with self.lock:
                found = self.subs.pop(sid, None) if sid is not None else None
            if found is None:
                return self.error(sid, action, 404, "subscription not found")
            return self.reply({"subscription_id": sid, "action": action})
        if action != "subscribe":
            return self.error(sid, action, 400, f"unknown action {_echo(action, 100)}")
        with self.lock:
            problem = _flow_problem(msg, self.subs)
            if problem is None:
                if sid is None:
                    while f"{self.next_id:x}" in self.subs:
                        self.next_id += 1
                    sid = f"{self.next_id:x}"
                    self.next_id += 1
                self.subs[sid] = msg["topic"]
                self.reply({"subscription_id": sid, "action": action})  # before any data
        if problem:
            return self.error(sid, action, *problem)
        self.ready.set()

    def render(self, frame: Frame):
        if frame.dir != "in" or not frame.channel or b'"payload"' not in frame.payload:
            return None
        with self.lock:
            ids = [sid for sid, topic in self.subs.items() if topic == frame.channel]
        out = []
        for sid in ids:
            tag = json.dumps({"subscription_id": sid}, separators=(",", ":"))[:-1].encode()
            out.append((_FLOW_ID.sub(lambda m, tag=tag: tag, frame.payload, count=1), True))
        return out or None


# -- dfuse -------------------------------------------------------------------------------

_DFUSE_REQ = re.compile(rb'"req_id":"[^"]*"')
_DFUSE_TYPES = {"get_action_traces": {"action_trace", "progress"},
                "get_table_rows": {"table_snapshot", "table_delta", "progress"},
                "get_head_info": {"head_info"},
                "get_transaction_lifecycle": {"transaction_lifecycle"}}
_DFUSE_FLAGS = ("fetch", "listen", "irreversible_only")
_DFUSE_NUMBERS = ("start_block", "with_progress")
_DFUSE_DATA_BOOLS = {"with_inline_traces", "with_dbops", "with_ramops", "with_dtrxops",
                     "with_tableops", "json"}


def _dfuse_problem(msg: dict, rtype: str) -> str | None:
    """Why a request is invalid (dfuse's ``invalid_request``), or None."""
    for name in _DFUSE_FLAGS:
        if name in msg and not isinstance(msg[name], bool):
            return f"{name} must be a boolean"
    for name in _DFUSE_NUMBERS:
        if name in msg and msg[name] is not None and not _int(msg[name]):
            return f"{name} must be an integer"
    data = msg.get("data")
    data = {} if data is None else data
    if not isinstance(data, dict):
        return "data must be an object"
    for name, value in data.items():
        if name in _DFUSE_DATA_BOOLS:
            if not isinstance(value, bool):
                return f"data.{name[:100]} must be a boolean"
        elif not isinstance(value, str):
            return f"data.{name[:100]} must be a string"
    if rtype == "get_action_traces" and (not data.get("accounts") or msg.get("fetch")):
        return "get_action_traces needs accounts and supports listen only"
    if rtype == "get_table_rows" and not all(data.get(k) for k in ("code", "scope", "table")):
        return "code, scope and table are required"
    return None


class DfuseEmulator(_JsonEmulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.requests: dict[str, str] = {}   # client req_id -> request type

    def error(self, req_id, code: str, message: str) -> None:
        body = {"type": "error", "data": {"code": code, "trace_id": "0" * 32,
                                          "message": message, "details": {}}}
        if isinstance(req_id, str):
            body = {"type": "error", "req_id": req_id, "data": body["data"]}
        self.reply(body)

    def internal_error(self) -> None:
        self.error(None, "internal_error", "internal error")

    def on_message(self, message) -> None:
        if not isinstance(message, str):
            return self.error(None, "invalid_message", "binary messages are not supported")
        msg = _json(message)
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
            with self.lock:
                found = self.requests.pop(data["req_id"], None)
            return self.reply({"type": "unlistened", "req_id": req_id,
                               "data": {"success": found is not None}})
        if rtype not in REQUESTS:
            return self.error(req_id, "unknown_message_type",
                              f"unknown request type {_echo(rtype, 100)}")
        problem = _dfuse_problem(msg, rtype)
        if problem:
            return self.error(req_id, "invalid_request", problem)
        with self.lock:
            full = req_id not in self.requests and len(self.requests) >= MAX_STREAMS
            if not full:
                self.requests[req_id] = rtype
                self.reply({"type": "listening", "req_id": req_id,  # before any data
                            "data": {"next_block": 0}})
        if full:
            return self.error(req_id, "ws_too_much_stream_error",
                              f"at most {MAX_STREAMS} streams per connection")
        self.ready.set()

    def render(self, frame: Frame):
        if frame.dir != "in" or frame.channel in (None, "listening", "ping", "error",
                                                  "unlistened"):
            return None
        with self.lock:
            ids = [r for r, t in self.requests.items() if frame.channel in _DFUSE_TYPES[t]]
        out = []
        for req_id in ids:
            tag = b'"req_id":' + json.dumps(req_id).encode()
            out.append((_DFUSE_REQ.sub(lambda m, tag=tag: tag, frame.payload, count=1), True))
        return out or None


_EMULATORS = {"alpaca": AlpacaEmulator, "hyperliquid": HyperliquidEmulator,
              "vega": VegaEmulator, "flow": FlowEmulator, "dfuse": DfuseEmulator}


def emulator_for(venue: str, emulate: bool, send: Send, path: str, headers,
                 manifest) -> Emulator:
    """The emulator for a recorded venue (pass-through for others or with emulate=False)."""
    cls = _EMULATORS.get(venue, Emulator) if emulate else Emulator
    return cls(send, path, headers, manifest)
