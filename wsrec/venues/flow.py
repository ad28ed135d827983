"""Flow access node: subscribe by topic with a subscription_id, resumable by block height.

Protocol (venue-docs/flow.md, PROTOCOLS.md section 4): the client sends
``{"subscription_id":"s0","action":"subscribe","topic":"block_digests","arguments":{...}}``
and gets ``{"subscription_id":"s0","action":"subscribe"}``; data frames are
``{"subscription_id":"s0","topic":"block_digests","payload":{...}}``. At most 20
subscriptions per connection, so larger requests are spread over several
connections. After a reconnect each subscription starts again at the last height
seen + 1. The server pings every 9 s (answered by the protocol layer).

Exchange time (``exch_ts``): the block's ``timestamp`` (block digests, headers, and
blocks in their ``header``) or an events message's ``block_timestamp`` (RFC 3339, UTC).
Account statuses and transaction statuses carry none: null.

Normalized tables (``wsrec.venues.normalize``):

* blocks: ``block_digests`` (``height``, ``block_id``; the docs say ``id``),
  ``block_headers`` (``height``, ``id``) and ``blocks`` (the same, in ``header``).
* actions: ``events``, one row per event: ``type`` is the event type, ``account`` its
  contract as Flow's event filters name it (``A.<address>.<Contract>`` for
  ``A.<address>.<Contract>.<Event>``, ``flow`` for protocol events such as
  ``flow.AccountCreated``), ``tx_id`` its ``transaction_id`` and ``data`` its payload,
  which the access node sends as base64 JSON-CDC, decoded to the JSON-CDC text. An
  empty (heartbeat) message has no rows.

Sequence checks (``check_sequence``), per subscription on a connection: block topics
stream every height, so a height that is not the last + 1 is a gap (skipped) or a
repeat; events and account statuses skip blocks without events, so there
``message_index`` must count up by one (it counts each subscription's messages from 0)
and heights must rise.
"""

from __future__ import annotations

import base64
import json
import re

from wsrec.errors import UsageError
from wsrec.lists import split_list
from wsrec.venues.base import (NONE, UNAVAILABLE, Request, Server, Step, Stream, Venue,
                               compact, echo, endpoint, integer, loads, shards, strings)

__all__ = ["Flow", "FlowStream", "FlowServer", "TOPICS", "MAX_SUBSCRIPTIONS", "EXCH_TIME",
           "NORMALIZED", "SEQUENCED", "event_contract", "event_data"]

MAINNET = "wss://rest-mainnet.onflow.org/v1/ws"
TESTNET = "wss://rest-testnet.onflow.org/v1/ws"
MAX_SUBSCRIPTIONS = 20

#: topic -> arguments it accepts
TOPICS = {
    "block_digests": ("block_status", "start_block_id", "start_block_height"),
    "block_headers": ("block_status", "start_block_id", "start_block_height"),
    "blocks": ("block_status", "start_block_id", "start_block_height"),
    "events": ("start_block_id", "start_block_height", "heartbeat_interval", "event_types",
               "addresses", "contracts"),
    "account_statuses": ("start_block_id", "start_block_height", "heartbeat_interval",
                         "event_types", "account_addresses"),
    "transaction_statuses": ("tx_id",),
}
_BLOCK_TOPICS = {"block_digests", "block_headers", "blocks"}
_LISTS = {"event_types", "addresses", "contracts", "account_addresses"}
_STARTS = ("start_block_id", "start_block_height")

#: where a frame's exchange time is: the block's (RFC 3339)
EXCH_TIME = ((rb'"(?:block_)?timestamp":"(?P<t>[^"]{1,40})"', "rfc3339"),)
#: normalized table -> the topics (channels) whose frames carry its rows
NORMALIZED = {"blocks": ("block_digests", "block_headers", "blocks"), "actions": ("events",)}
#: the topics whose heights or message indexes are checked (``check_sequence``)
SEQUENCED = ("block_digests", "block_headers", "blocks", "events", "account_statuses")

_SUB = re.compile(rb'"subscription_id":"([^"]*)"')
_TOPIC = re.compile(rb'"topic":"([^"]+)"')
_HEIGHT = re.compile(rb'"(?:block_)?height":"?(\d+)')
# the type of each event in an events/account_statuses payload: event types always have a
# dot (flow.AccountCreated, A.<address>.<Contract>.<Event>), Cadence JSON type names
# (Event, UFix64, ...) never, should an event's payload ever arrive as JSON, not base64
_EVENT_TYPE = re.compile(rb'"type":\s*"([^"\\]*\.[^"\\]*)"')
_EVENT_TOPICS = {"events", "account_statuses"}


class FlowStream(Stream):
    def __init__(self, url: str, subscriptions: list[dict]):
        self.url = url
        self.subscriptions = subscriptions        # [{"subscription_id", "topic", "arguments"}]
        # subscription_id -> its event_types filter, the symbols of its empty messages
        self.filters = {s["subscription_id"]: tuple(s["arguments"]["event_types"])
                        for s in subscriptions if s.get("topic") in _EVENT_TOPICS and
                        isinstance((s.get("arguments") or {}).get("event_types"), list)}
        self.last_data: dict[str, bytes] = {}     # subscription_id -> newest data frame
        self.pending = 0

    def opening(self) -> list[bytes]:
        self.pending = len(self.subscriptions)
        out = []
        for sub in self.subscriptions:
            arguments = dict(sub["arguments"])
            height = self.last_height(sub["subscription_id"])
            if height is not None:  # resume right after the last block seen
                arguments.pop("start_block_id", None)
                arguments["start_block_height"] = str(height + 1)
            out.append(compact({"subscription_id": sub["subscription_id"], "action": "subscribe",
                                "topic": sub["topic"], "arguments": arguments}))
        return out

    def last_height(self, sub_id: str) -> int | None:
        """The block height of the newest data frame of a subscription (parsed only here,
        at reconnect time, so the receive path never parses JSON)."""
        frame = self.last_data.get(sub_id)
        if frame is None:
            return None
        m = _HEIGHT.search(frame)
        return int(m.group(1)) if m else None

    def receive(self, payload: bytes, text: bool):
        """Channels: the ``topic`` (data) or ``action`` (replies). Symbols: event types, as
        ``--symbols`` means them: every distinct ``type`` of the events in an events or
        account_statuses payload, or for an empty (heartbeat) message the ``event_types``
        filter of the subscription that sent it; none for block and transaction topics
        and for replies. The ``subscription_id`` is read for bookkeeping only."""
        sub = _SUB.search(payload)
        sub_id = sub.group(1).decode() if sub else None
        topic = _TOPIC.search(payload)
        if topic is not None and b'"payload"' in payload:
            if sub_id is not None:
                self.last_data[sub_id] = payload
            name = topic.group(1).decode()
            symbols = NONE
            if name in _EVENT_TOPICS:
                symbols = tuple(dict.fromkeys(t.decode() for t in _EVENT_TYPE.findall(payload)))
                if not symbols and sub_id is not None:
                    symbols = self.filters.get(sub_id, NONE)
            return (name,), symbols, None
        return self._reply(payload, NONE)

    def _reply(self, payload: bytes, symbols):
        try:
            msg = json.loads(payload)
        except ValueError:
            return NONE, symbols, None
        if not isinstance(msg, dict):
            return NONE, symbols, None
        action = msg.get("action")
        channels = (action,) if isinstance(action, str) else NONE
        error = msg.get("error")
        if isinstance(error, dict):
            code, text = error.get("code"), error.get("message", "")
            what = f"flow {action or 'request'} {msg.get('subscription_id', '')}: " \
                   f"error {code}: {text}"
            if code in (400, 404, 429):
                return ("error",), symbols, Step(fatal=what)
            return ("error",), symbols, Step(retry=what)
        if action == "subscribe":
            self.pending -= 1
            return channels, symbols, Step(ready=True) if self.pending == 0 else None
        return channels, symbols, None


class Flow(Venue):
    name = "flow"
    title = "Flow access node WebSocket streams"
    symbols = ("event types for the events and account_statuses topics (one subscription "
               "each); none for the block topics")
    endpoints = {"mainnet": MAINNET, "testnet": TESTNET}
    channels = {t: f"topic {t} (arguments: {', '.join(a)})" for t, a in TOPICS.items()}
    default_channels = ["block_digests"]
    params = {"block_status": "sealed (default) or finalized, for block topics",
              "start_block_height": "first block to stream", "start_block_id": "first block id",
              "event_types": "comma list of event types (events, account_statuses)",
              "addresses": "comma list of addresses (events)",
              "contracts": "comma list of contracts (events)",
              "account_addresses": "comma list (account_statuses)",
              "heartbeat_interval": "blocks between empty messages (events, account_statuses)",
              "tx_id": "transaction id (transaction_statuses)",
              "testnet": "true for the testnet endpoint"}
    watchdog = 60.0      # sealed blocks arrive about every second
    heartbeat = None     # the server pings every 9 s; the protocol layer answers
    exch_time = EXCH_TIME
    normalized = NORMALIZED
    sequenced = SEQUENCED

    def normalize(self, table, message, channel, state):
        payload = message["payload"]
        if table == "blocks":
            header = payload["header"] if message["topic"] == "blocks" else payload
            block_id = header.get("block_id") or header["id"]
            return [(None, int(header["height"]), block_id)]
        if table == "actions":
            height, block_id = int(payload["block_height"]), payload["block_id"]
            return [(None, height, block_id, e["transaction_id"], e["type"],
                     event_contract(e["type"]), event_data(e["payload"]))
                    for e in payload.get("events") or ()]
        return ()

    def check_sequence(self, message, channel, state):
        """Heights skipped or repeated by a block subscription, message indexes skipped
        or repeated and heights not rising in an events or account statuses one (see the
        module docstring); ``state``: (subscription_id, topic) -> the last values."""
        if not isinstance(message, dict) or not isinstance(message.get("payload"), dict):
            return []
        topic, payload = message.get("topic"), message["payload"]
        if topic == "blocks":
            payload = payload.get("header")
            if not isinstance(payload, dict):
                return []
        height = _count(payload.get("height") if topic in _BLOCK_TOPICS
                        else payload.get("block_height", payload.get("height")))
        index = None if topic in _BLOCK_TOPICS else _count(payload.get("message_index"))
        if height is None:
            return []
        sub = f"subscription {message.get('subscription_id')} ({topic})"
        key = (message.get("subscription_id"), topic)
        last = state.get(key)
        state[key] = (height, index)
        if last is None:
            return []
        if topic in _BLOCK_TOPICS:
            return _steps(sub, "height", last[0], height)
        if index is not None and last[1] is not None and index != last[1] + 1:
            return _steps(sub, "message_index", last[1], index)
        if height <= last[0]:
            return [(f"{sub}: height {height} after {last[0]}, expected a higher one",
                     last[0] - height + 1)]
        return []

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        subs = self.subscriptions(request)
        url = endpoint(request.url, TESTNET if request.flag("testnet") else MAINNET, "v1/ws")
        return shards([FlowStream(url, subs[i:i + MAX_SUBSCRIPTIONS])
                       for i in range(0, len(subs), MAX_SUBSCRIPTIONS)])

    def subscriptions(self, request: Request) -> list[dict]:
        """The subscribe requests (``subscription_id``, ``topic``, ``arguments``) a
        request sends."""
        topics = self.check_channels(request)
        if request.param("start_block_id") and request.param("start_block_height"):
            raise UsageError("flow: give start_block_id or start_block_height, not both")
        subs = []
        # symbols, where given, are event types: one subscription each
        filters = request.symbols or [None]
        for topic in topics:
            args = {}
            for name in TOPICS[topic]:
                value = request.param(name)
                if value is not None:
                    args[name] = split_list(value, seps=",|") if name in _LISTS else str(value)
            if topic in _BLOCK_TOPICS:
                args.setdefault("block_status", "sealed")
            per_topic = filters if topic in ("events", "account_statuses") else [None]
            for f in per_topic:
                a = dict(args)
                if f is not None:
                    a["event_types"] = [f]
                sid = f"s{len(subs)}-{topic}"[:20]
                subs.append({"subscription_id": sid, "topic": topic, "arguments": a})
        return subs


# -- normalized tables ---------------------------------------------------------------------

def event_contract(event_type: str) -> str | None:
    """The contract of an event type, as Flow's ``contracts`` filter names it:
    ``A.<address>.<Contract>`` of ``A.<address>.<Contract>.<Event>``, ``flow`` of a
    protocol event (``flow.AccountCreated``); None for anything else."""
    parts = event_type.split(".")
    if parts[0] == "A" and len(parts) >= 4:
        return f"A.{parts[1]}.{parts[2]}"
    if parts[0] == "flow" and len(parts) == 2:
        return "flow"
    return None


def event_data(payload) -> str | None:
    """An event's payload as JSON-CDC text: the access node sends it base64 encoded
    (ValueError when it is not base64 of a JSON-CDC object); one sent as JSON as is."""
    if payload is None or payload == "":
        return None
    if not isinstance(payload, str):
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    text = base64.b64decode(payload, validate=True).decode().strip()
    if not text.startswith("{"):
        raise ValueError(f"an event payload that is no JSON-CDC value: {text[:40]!r}")
    return text


# -- sequence checks -----------------------------------------------------------------------

def _count(value) -> int | None:
    """A height or message index (a uint64, in a string or not); None when it is none."""
    if integer(value):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _steps(sub: str, name: str, last: int, got: int) -> list:
    """A count that must go up by one: the values skipped, or repeated."""
    if got == last + 1:
        return []
    if got > last:
        return [(f"{sub}: {name} {got} after {last}, expected {last + 1}", got - last - 1)]
    return [(f"{sub}: {name} {got} again after {last}", last - got + 1)]


# -- the server side -----------------------------------------------------------------------

_ID = re.compile(rb'^\{\s*"subscription_id":\s*"[^"\\]*"')


class FlowServer(Server):
    """A Flow access node's side of one connection (PROTOCOLS.md section 4).

    Served at ``/v1/ws``. No greeting. Subscriptions are validated strictly (unknown
    topic, field or argument, both start arguments, a missing block_status, an id over
    20 characters or already in use: 400; a 21st subscription: 429) and acknowledged;
    a subscription without an id gets one (hexadecimal, counting up, skipping ids in
    use). ``list_subscriptions`` lists them with their arguments; ``unsubscribe`` of an
    unknown id: 404. ``subs``: subscription_id -> ``{"topic", "arguments"}``. A data
    frame goes to every subscription of its topic, tagged with that subscription's id.
    ``offered``: a subscription to a topic it doesn't carry, to event types outside
    those it carries, with arguments other than its own, or from a start block (it
    streams from the present) is refused with 400.
    """

    def __init__(self, path="/", headers=None, *, offered: Request | None = None):
        super().__init__(path, headers, offered=offered)
        self.carried = None if offered is None else Flow().subscriptions(offered)
        self.subs: dict[str, dict] = {}
        self.next_id = 0
        self.ready = False

    paths = ("/v1/ws",)
    default_path = "/v1/ws"

    @classmethod
    def refuse(cls, path):
        return None if path.split("?")[0] == "/v1/ws" else "not found"

    def error(self, sid, action, code: int, message: str) -> None:
        body = {"error": {"code": code, "message": message},
                "action": action if isinstance(action, str) else None}
        if isinstance(sid, str):
            body = {"subscription_id": sid, **body}
        self.reply(body)

    def internal_error(self) -> None:
        self.error(None, None, 500, "internal error")

    def problem(self, msg: dict) -> tuple[int, str] | None:
        """Why a subscribe request is refused (None: it is valid)."""
        topic, args = msg.get("topic"), msg.get("arguments")
        if set(msg) - {"subscription_id", "action", "topic", "arguments"}:
            return 400, "unknown field in request"
        if msg.get("subscription_id") in self.subs:
            return 400, f"subscription_id {msg['subscription_id']} is already in use"
        if not isinstance(topic, str) or topic not in TOPICS:
            return 400, f"unknown topic {echo(topic, 100)}"
        args = {} if args is None else args
        if not isinstance(args, dict) or set(args) - set(TOPICS[topic]):
            return 400, "unknown argument"
        for name, value in args.items():
            if not (strings(value) if name in _LISTS else isinstance(value, str)):
                return 400, f"invalid {name}"
        if "start_block_id" in args and "start_block_height" in args:
            return 400, "only one of start_block_id and start_block_height may be given"
        if topic in _BLOCK_TOPICS and args.get("block_status") not in ("sealed", "finalized"):
            return 400, "block_status must be sealed or finalized"
        if not args.get("start_block_height", "0").isdigit():
            return 400, "start_block_height must be a number in a string"
        if self.carried is not None:
            unavailable = self.unavailable(topic, args)
            if unavailable:
                return 400, unavailable
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            return 429, "maximum number of subscriptions reached"
        return None

    def unavailable(self, topic: str, args: dict) -> str | None:
        """Why ``offered`` doesn't carry a valid subscription (None: it does)."""
        for name in _STARTS:
            if name in args:
                return f"{name} is {UNAVAILABLE}: it streams from the present"
        mine = {k: v for k, v in args.items() if k != "event_types"}
        wanted = set(args.get("event_types") or ["*"])
        types: set = set()
        for sub in self.carried:
            theirs = {k: v for k, v in sub["arguments"].items()
                      if k not in _STARTS and k != "event_types"}
            if sub["topic"] == topic and theirs == mine:
                if "event_types" not in sub["arguments"]:
                    return None   # every event type
                types.update(sub["arguments"]["event_types"])
        if not types:
            return f"topic {topic} with these arguments is {UNAVAILABLE}"
        if not types.issuperset(wanted):
            return f"event types {', '.join(sorted(wanted - types))} are {UNAVAILABLE}"
        return None

    def receive(self, message) -> None:
        msg = loads(message)
        if not isinstance(msg, dict):
            return self.error(None, None, 400, "invalid message format")
        action, sid = msg.get("action"), msg.get("subscription_id")
        if sid is not None and (not isinstance(sid, str) or not sid or len(sid) > 20):
            return self.error(sid, action, 400, "subscription_id must be 1 to 20 characters")
        if action == "list_subscriptions":
            return self.reply({"subscriptions": [{"subscription_id": k, **v}
                                                 for k, v in self.subs.items()],
                               "action": action})
        if action == "unsubscribe":
            if sid is None or self.subs.pop(sid, None) is None:
                return self.error(sid, action, 404, "subscription not found")
            return self.reply({"subscription_id": sid, "action": action})
        if action != "subscribe":
            return self.error(sid, action, 400, f"unknown action {echo(action, 100)}")
        problem = self.problem(msg)
        if problem:
            return self.error(sid, action, *problem)
        if sid is None:
            while f"{self.next_id:x}" in self.subs:
                self.next_id += 1
            sid = f"{self.next_id:x}"
            self.next_id += 1
        self.subs[sid] = {"topic": msg["topic"], "arguments": msg.get("arguments") or {}}
        self.reply({"subscription_id": sid, "action": action})
        self.ready = True

    @staticmethod
    def tag(payload: bytes, sid: str) -> bytes:
        """A data frame with its ``subscription_id`` (its first key) set to ``sid``."""
        tag = compact({"subscription_id": sid})[:-1]
        return _ID.sub(lambda m: tag, payload, count=1)

    def signature(self):
        return tuple((sid, sub["topic"]) for sid, sub in self.subs.items())

    def render(self, payload, text, channels, symbols):
        channel = channels[0] if len(channels) == 1 else None
        if not channel or b'"payload"' not in payload:
            return []
        return [(self.tag(payload, sid), True) for sid, sub in self.subs.items()
                if sub["topic"] == channel]
