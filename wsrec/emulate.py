"""Playing the venue for a client: what the replay WebSocket server says and sends.

An ``Emulator`` answers one client the way the recorded venue would (welcome, auth,
subscription acks, pongs) and decides, for each recorded frame, what that client gets:
nothing (not subscribed, or a control frame the server makes itself), the recorded
bytes, or a rewritten frame (an Alpaca array cut down to the subscribed elements, a
Flow or dfuse frame re-tagged with the client's own subscription id). The server
(``wsrec.serve``) moves bytes; emulators never touch sockets, only the ``send``
callable they are given, and are tested with literal frames.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

import msgpack

from .lines import decode_msgpack, is_msgpack_session
from .session import Frame
from .timefmt import parse_time
from .venues.alpaca import TYPES
from .venues.hyperliquid import SUBSCRIPTIONS
from .venues.vega import PREFIX

__all__ = ["Emulator", "emulator_for"]

Send = Callable[[bytes, bool], None]   # (payload, is_text)


class Emulator:
    """The base: every recorded inbound frame, as is; ready at once."""

    def __init__(self, send: Send, path: str = "/", headers=None, manifest=None):
        self.send = send
        self.path = path
        self.headers = headers or {}
        self.manifest = manifest or {}
        self.ready = threading.Event()

    def start(self) -> None:
        """The connection is open (send a welcome here)."""
        self.ready.set()

    def on_message(self, message) -> None:
        """A client message (str or bytes)."""

    def render(self, frame: Frame) -> tuple[bytes, bool] | list | None:
        """What this client gets for a recorded frame: (payload, is_text), a list of
        them, or None."""
        if frame.dir != "in":
            return None
        return frame.payload, frame.kind == "text"



class _JsonEmulator(Emulator):
    """A venue where the client speaks first and the server answers in compact JSON."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lock = threading.Lock()

    def reply(self, obj) -> None:
        self.send(json.dumps(obj, separators=(",", ":")).encode(), True)

    def start(self) -> None:
        pass  # no greeting: the client's first message starts the conversation


# -- Alpaca -----------------------------------------------------------------------------

_CONTROL_ALPACA = {"success", "error", "subscription"}
_STOCK_LISTS = ["trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds",
                "corrections", "cancelErrors"]


class AlpacaEmulator(Emulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.packed = self.headers.get("Content-Type", "").lower() == "application/msgpack"
        self.recorded_packed = is_msgpack_session(self.manifest)
        self.subs: dict[str, set] = {}
        self.authed = bool(self.headers.get("APCA-API-KEY-ID"))
        self.lock = threading.Lock()

    def reply(self, msg: dict) -> None:
        if self.packed:
            self.send(msgpack.packb([msg]), False)
        else:
            self.send(json.dumps([msg], separators=(",", ":")).encode(), True)

    def start(self) -> None:
        self.reply({"T": "success", "msg": "connected"})
        if self.authed:
            self.reply({"T": "success", "msg": "authenticated"})

    def on_message(self, message) -> None:
        try:
            msg = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
            action = msg["action"]
        except Exception:  # noqa: BLE001
            return self.reply({"T": "error", "code": 400, "msg": "invalid syntax"})
        if action == "auth":
            if self.authed:
                return self.reply({"T": "error", "code": 403, "msg": "already authenticated"})
            self.authed = True  # any credentials: this is a replay
            return self.reply({"T": "success", "msg": "authenticated"})
        if action not in ("subscribe", "unsubscribe"):
            return self.reply({"T": "error", "code": 400, "msg": "invalid syntax"})
        if not self.authed:
            return self.reply({"T": "error", "code": 401, "msg": "not authenticated"})
        with self.lock:
            for channel, symbols in msg.items():
                if channel == "action" or not isinstance(symbols, list):
                    continue
                target = self.subs.setdefault(channel, set())
                (target.update if action == "subscribe" else target.difference_update)(symbols)
            ack = {"T": "subscription"}
            for name in _STOCK_LISTS:
                ack[name] = sorted(self.subs.get(name, ()))
            for name in self.subs:
                ack.setdefault(name, sorted(self.subs[name]))
            if "trades" in self.subs:
                for name in ("corrections", "cancelErrors"):
                    ack[name] = sorted(set(ack[name]) | self.subs["trades"])
        self.reply(ack)
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
        return json.dumps([_to_json(i) for i in keep], separators=(",", ":")).encode(), True


def _to_json(item: dict) -> dict:
    from .timefmt import format_ns
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

class HyperliquidEmulator(_JsonEmulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.subs: list[dict] = []


    def on_message(self, message) -> None:
        try:
            msg = json.loads(message)
            method = msg["method"]
        except (ValueError, TypeError, KeyError):
            return self.reply({"channel": "error", "data": "Error parsing JSON into valid "
                                                           "websocket request"})
        if method == "ping":
            return self.reply({"channel": "pong"})
        sub = msg.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict) or \
                sub.get("type") not in SUBSCRIPTIONS:
            return self.reply({"channel": "error", "data": f"Invalid subscription "
                                                           f"{json.dumps(sub)}"})
        with self.lock:
            if method == "subscribe":
                self.subs.append(sub)
            elif sub in self.subs:
                self.subs.remove(sub)
        self.reply({"channel": "subscriptionResponse", "data": {"method": method,
                                                                "subscription": sub}})
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
    """The URL path and query pick the stream; nothing is said, no client message."""

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


class FlowEmulator(_JsonEmulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.subs: dict[str, str] = {}   # client subscription_id -> topic
        self.next_id = 0


    def on_message(self, message) -> None:
        try:
            msg = json.loads(message)
            action = msg["action"]
        except (ValueError, TypeError, KeyError):
            return self.reply({"error": {"code": 400, "message": "invalid message"}})
        sid = msg.get("subscription_id")
        with self.lock:
            if action == "subscribe":
                if sid is None:
                    sid, self.next_id = f"{self.next_id:x}", self.next_id + 1
                self.subs[sid] = msg.get("topic")
            elif action == "unsubscribe":
                self.subs.pop(sid, None)
            elif action == "list_subscriptions":
                return self.reply({"subscriptions": [
                    {"subscription_id": k, "topic": t, "arguments": {}}
                    for k, t in self.subs.items()], "action": action})
        self.reply({"subscription_id": sid, "action": action})
        if action == "subscribe":
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


class DfuseEmulator(_JsonEmulator):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.requests: dict[str, str] = {}   # client req_id -> request type


    def on_message(self, message) -> None:
        try:
            msg = json.loads(message)
            rtype, req_id = msg["type"], msg.get("req_id", "")
        except (ValueError, TypeError, KeyError):
            return self.reply({"type": "error", "data": {"code": "invalid_message",
                                                         "message": "not a request"}})
        if rtype == "unlisten":
            with self.lock:
                found = self.requests.pop((msg.get("data") or {}).get("req_id"), None)
            return self.reply({"type": "unlistened", "req_id": req_id,
                               "data": {"success": found is not None}})
        if rtype not in _DFUSE_TYPES:
            return self.reply({"type": "error", "req_id": req_id, "data": {
                "code": "unknown_message_type", "message": rtype}})
        with self.lock:
            self.requests[req_id] = rtype
        self.reply({"type": "listening", "req_id": req_id, "data": {"next_block": 0}})
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
