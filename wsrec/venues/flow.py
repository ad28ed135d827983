"""Flow access node: subscribe by topic with a subscription_id, resumable by block height.

Protocol (venue-docs/flow.md, PROTOCOLS.md section 4): the client sends
``{"subscription_id":"s0","action":"subscribe","topic":"block_digests","arguments":{...}}``
and gets ``{"subscription_id":"s0","action":"subscribe"}``; data frames are
``{"subscription_id":"s0","topic":"block_digests","payload":{...}}``. At most 20
subscriptions per connection, so larger requests are spread over several
connections. After a reconnect each subscription starts again at the last height
seen + 1. The server pings every 9 s (answered by the protocol layer).
"""

from __future__ import annotations

import json
import re

from wsrec.venues.base import (NONE, Request, Step, Stream, UsageError, Venue, endpoint, shards,
                               split_params)

__all__ = ["Flow", "FlowStream", "TOPICS", "MAX_SUBSCRIPTIONS"]

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
            out.append(json.dumps({"subscription_id": sub["subscription_id"],
                                   "action": "subscribe", "topic": sub["topic"],
                                   "arguments": arguments}, separators=(",", ":")).encode())
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

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
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
                    args[name] = split_params(value) if name in _LISTS else str(value)
            if topic in _BLOCK_TOPICS:
                args.setdefault("block_status", "sealed")
            per_topic = filters if topic in ("events", "account_statuses") else [None]
            for f in per_topic:
                a = dict(args)
                if f is not None:
                    a["event_types"] = [f]
                sid = f"s{len(subs)}-{topic}"[:20]
                subs.append({"subscription_id": sid, "topic": topic, "arguments": a})
        url = endpoint(request.url, TESTNET if request.flag("testnet") else MAINNET, "v1/ws")
        return shards([FlowStream(url, subs[i:i + MAX_SUBSCRIPTIONS])
                       for i in range(0, len(subs), MAX_SUBSCRIPTIONS)])
