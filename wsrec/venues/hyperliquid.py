"""Hyperliquid: one subscribe message per subscription object, acks, ping/pong.

Protocol (venue-docs/hyperliquid.md, PROTOCOLS.md section 2): the client sends
``{"method":"subscribe","subscription":{"type":"trades","coin":"SOL"}}`` per
subscription and gets ``{"channel":"subscriptionResponse",...}``; data frames are
``{"channel":<name>,"data":...}``. The server closes a connection it has sent nothing
to for 60 s, so the client sends ``{"method":"ping"}`` (answered by
``{"channel":"pong"}``). Older servers greet with a non-JSON text line.

Exchange time (``exch_ts``): a frame's first ``time`` (ms), else a candle's start ``t``.

Normalized tables (``wsrec.venues.normalize``); numbers are decimal strings on the wire:

* trades: ``trades``, one row per trade, stamped with its ``time``; ``id`` is ``tid``;
  ``side`` is the aggressor's (``B`` buy, ``A`` sell).
* quotes: ``bbo``, ``[bid, ask]`` (either may be null: that side is empty).
* book_changes: ``l2Book``; every frame is a whole book (the levels the venue shows),
  so all its levels are snapshot rows.
* bars: ``candle`` (``t`` start, ``i`` interval, ``v`` volume, ``n`` trades); one row per
  update of the bar, ``exch_ts`` the bar's start.

User streams and ``allMids``/``activeAssetCtx`` have no table. No sequence numbers.
"""

from __future__ import annotations

import json
import re

from wsrec.errors import UsageError
from wsrec.timefmt import MAX_NS, MIN_NS
from wsrec.venues.base import (NONE, UNAVAILABLE, Request, Server, Step, Stream, Venue,
                               compact, echo, endpoint, integer, loads)

__all__ = ["Hyperliquid", "HyperliquidStream", "HyperliquidServer", "SUBSCRIPTIONS"]

MAINNET = "wss://api.hyperliquid.xyz/ws"
TESTNET = "wss://api.hyperliquid-testnet.xyz/ws"

_USER = ("notification", "webData2", "orderUpdates", "userEvents", "userFills",
         "userFundings", "userNonFundingLedgerUpdates", "userTwapSliceFills",
         "userTwapHistory")
#: subscription type -> (arguments it takes, data channel)
SUBSCRIPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "allMids": (("dex",), "allMids"),
    "l2Book": (("coin", "nSigFigs", "mantissa"), "l2Book"),
    "trades": (("coin",), "trades"),
    "bbo": (("coin",), "bbo"),
    "candle": (("coin", "interval"), "candle"),
    "activeAssetCtx": (("coin",), "activeAssetCtx"),
    "activeAssetData": (("user", "coin"), "activeAssetData"),
    **{t: (("user",), "user" if t == "userEvents" else t) for t in _USER},
}
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d",
             "1w", "1M")
_NUMERIC = ("nSigFigs", "mantissa")

#: where a frame's exchange time is: the first ``time`` (ms: books, bbo, trades, user
#: streams), else a candle's ``t`` (its start, ms)
EXCH_TIME = ((rb'"time":\s*(?P<t>\d{1,19})', "ms"),
             (rb'^\{"channel":\s*"candle",\s*"data":\s*\[?\{[^{}]*?"t":\s*(?P<t>\d{1,19})',
              "ms"))
#: normalized table -> the channels whose frames carry its rows
NORMALIZED = {"trades": ("trades",), "quotes": ("bbo",), "book_changes": ("l2Book",),
              "bars": ("candle",)}
#: a trade's ``side`` (the aggressor's: Bid or Ask) -> trades.side
SIDES = {"B": "buy", "A": "sell"}

_CHANNEL = re.compile(rb'^\s*\{\s*"channel"\s*:\s*"([^"]+)"')
_COIN = re.compile(rb'"coin":"([^"]+)"')
_CANDLE = re.compile(rb'"s":"([^"]+)"')


class HyperliquidStream(Stream):
    def __init__(self, url: str, subscriptions: list[dict]):
        self.url = url
        self.subscriptions = subscriptions
        self.pending = 0

    def reset(self) -> None:
        self.pending = len(self.subscriptions)  # no resume: subscribe again

    def opening(self) -> list[bytes]:
        self.pending = len(self.subscriptions)
        return [compact({"method": "subscribe", "subscription": s}) for s in self.subscriptions]

    def heartbeat(self) -> bytes:
        return b'{"method":"ping"}'

    def receive(self, payload: bytes, text: bool):
        m = _CHANNEL.match(payload)
        if m is None:
            return NONE, NONE, None  # e.g. "Websocket connection established."
        channel = m.group(1).decode()
        if channel == "subscriptionResponse":
            self.pending -= 1
            return (channel,), NONE, Step(ready=True) if self.pending == 0 else None
        if channel == "error":
            return (channel,), NONE, self._error(payload)
        if channel in ("pong", "post"):
            return (channel,), NONE, None
        coins = _COIN.findall(payload) or (_CANDLE.findall(payload)
                                           if channel == "candle" else [])
        return (channel,), tuple(dict.fromkeys(c.decode() for c in coins)), None

    def _error(self, payload: bytes) -> Step | None:
        try:
            text = str(json.loads(payload).get("data", ""))
        except ValueError:
            text = payload.decode(errors="replace")
        if text.startswith("Already subscribed"):
            self.pending -= 1
            return Step(ready=True) if self.pending == 0 else None
        if "subscri" in text.lower() or "invalid" in text.lower():
            return Step(fatal=f"hyperliquid rejected a subscription: {text[:200]}")
        return None


class Hyperliquid(Venue):
    name = "hyperliquid"
    title = "Hyperliquid exchange WebSocket API"
    symbols = "coins (BTC, ETH) for the coin subscriptions (trades, l2Book, bbo, candle, ...)"
    example_symbols = ("BTC", "ETH", "SOL")
    endpoints = {"mainnet": MAINNET, "testnet": TESTNET}
    channels = {t: f"{t} subscription (args: {', '.join(a)})"
                for t, (a, _) in SUBSCRIPTIONS.items()}
    default_channels = ["trades", "l2Book"]
    params = {"user": "address for user subscriptions",
              "interval": f"candle interval ({', '.join(INTERVALS)}; default 1m)",
              "nSigFigs": "l2Book significant figures", "mantissa": "l2Book mantissa",
              "dex": "allMids dex", "testnet": "true for the testnet endpoint"}
    watchdog = 90.0      # pongs arrive every 50 s even on quiet subscriptions
    heartbeat = 50.0     # {"method":"ping"} well inside the 60 s idle close
    send_limit = (2000, 60.0)
    connect_limit = (30, 60.0)
    max_subscriptions = 1000
    exch_time = EXCH_TIME
    normalized = NORMALIZED

    def normalize(self, table, message, channel, state):
        if message["channel"] not in NORMALIZED[table]:
            return ()
        return _ROWS[table](message["data"])

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        subs = self.subscriptions(request)
        if len(subs) > self.max_subscriptions:
            raise UsageError(f"hyperliquid: {len(subs)} subscriptions exceed the limit of "
                             f"{self.max_subscriptions} per IP")
        url = endpoint(request.url, TESTNET if request.flag("testnet") else MAINNET, "ws")
        return [HyperliquidStream(url, subs)]

    def subscriptions(self, request: Request) -> list[dict]:
        """The subscription objects a request sends (UsageError when it lacks one's
        arguments)."""
        channels = self.check_channels(request)
        subs = []
        for ctype in channels:
            args, _ = SUBSCRIPTIONS[ctype]
            base = {"type": ctype}
            for a in args:
                if a in ("coin",):
                    continue
                value = request.param(a)
                if a == "interval" and value is None:
                    value = "1m"
                if a == "user" and value is None:
                    raise UsageError(f"hyperliquid: {ctype} needs --param user=0x...")
                if value is not None:
                    if a == "interval" and value not in INTERVALS:
                        raise UsageError(f"hyperliquid: unknown interval {value!r}")
                    base[a] = int(value) if a in _NUMERIC else value
            if "coin" in args:
                if not request.symbols:
                    raise UsageError(f"hyperliquid: {ctype} needs coins (--symbols BTC,ETH)")
                subs.extend({**base, "coin": coin} for coin in request.symbols)
            else:
                subs.append(base)
        return subs


# -- the server side -----------------------------------------------------------------------

#: fields the server fills in when a subscription leaves them out (echoed in the ack)
_DEFAULTS = {"l2Book": {"nSigFigs": None, "mantissa": None}}
_CONTROL = {None, "subscriptionResponse", "pong", "error", "post"}


class HyperliquidServer(Server):
    """Hyperliquid's side of one connection (PROTOCOLS.md section 2).

    Served at ``/ws``. No greeting. Subscriptions are acknowledged with the normalised
    subscription echoed (``subscriptionResponse``); a duplicate gets ``Already
    subscribed``; an unknown type, a missing or ill-typed argument or a malformed
    request gets ``{"channel":"error","data":...}``; ``{"method":"ping"}`` gets
    ``{"channel":"pong"}``; a ``post`` gets ``post_response`` under its id.
    ``offered``: a subscription that is not one of its subscriptions (as normalised)
    gets ``Invalid subscription {...}: not available on this server``.
    """

    post_response: dict = {"type": "error", "payload": "post requests are not served"}

    def __init__(self, path="/", headers=None, *, post_response: dict | None = None,
                 offered: Request | None = None):
        super().__init__(path, headers, offered=offered)
        self.carried = None if offered is None else [
            {**_DEFAULTS.get(s["type"], {}), **s} for s in Hyperliquid().subscriptions(offered)]
        self.subs: list[dict] = []
        self.ready = False
        if post_response is not None:
            self.post_response = post_response

    paths = ("/ws",)
    default_path = "/ws"

    @classmethod
    def refuse(cls, path):
        return None if path.split("?")[0] == "/ws" else "not found"

    def error(self, text: str) -> None:
        self.reply({"channel": "error", "data": text})

    def internal_error(self) -> None:
        self.error("Internal error")

    def problem(self, sub) -> str | None:
        """Why a subscription object is not one the venue takes (None: it is)."""
        if not isinstance(sub, dict) or not isinstance(sub.get("type"), str) or \
                sub["type"] not in SUBSCRIPTIONS:
            return "unknown subscription type"
        args, _ = SUBSCRIPTIONS[sub["type"]]
        extra = set(sub) - set(args) - {"type"}
        if extra:
            return f"unexpected field(s) {', '.join(sorted(extra))[:200]}"
        for name, value in sub.items():
            if name in _NUMERIC:
                if value is not None and not integer(value):
                    return f"{name} must be an integer"
            elif not isinstance(value, str):
                return f"{name} must be a string"
        for required in ("coin", "user"):
            if required in args and not sub.get(required):
                return f"missing {required}"
        if sub["type"] == "candle" and sub.get("interval") not in INTERVALS:
            return "invalid interval"
        if "coin" in sub and not sub["coin"].replace("-", "").replace("/", "").replace(
                "@", "").replace(":", "").isalnum():
            return "invalid coin"
        return None

    def receive(self, message) -> None:
        msg = loads(message)
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            return self.error(f"Error parsing JSON into valid websocket request: {text[:100]}")
        method = msg["method"]
        if method == "ping":
            return self.reply({"channel": "pong"})
        if method == "post":
            if not integer(msg.get("id")):
                return self.error("Post request missing id")
            return self.reply({"channel": "post", "data": {"id": msg["id"],
                                                            "response": self.post_response}})
        if method not in ("subscribe", "unsubscribe"):
            return self.error(f"Unknown method: {method[:100]}")
        sub = msg.get("subscription")
        problem = self.problem(sub)
        if problem:
            return self.error(f"Invalid subscription {echo(sub)}: {problem}")
        normal = {**_DEFAULTS.get(sub["type"], {}), **sub}
        if method == "subscribe" and self.carried is not None and normal not in self.carried:
            return self.error(f"Invalid subscription {echo(sub)}: {UNAVAILABLE}")
        if method == "subscribe":
            if normal in self.subs:
                return self.error(f"Already subscribed: {echo(sub)}")
            self.subs.append(normal)
        else:
            if normal not in self.subs:
                return self.error(f"Already unsubscribed: {echo(sub)}")
            self.subs.remove(normal)
        self.reply({"channel": "subscriptionResponse",
                    "data": {"method": method, "subscription": normal}})
        self.ready = True

    def signature(self):
        return frozenset(compact(s) for s in self.subs)

    def render(self, payload, text, channels, symbols):
        channel = channels[0] if len(channels) == 1 else None
        if channel in _CONTROL:
            return []
        for sub in self.subs:
            if SUBSCRIPTIONS[sub["type"]][1] == channel and (
                    "coin" not in sub or sub["coin"] in symbols):
                return [(payload, text)]
        return []


# -- normalized tables ---------------------------------------------------------------------

def _ns(ms) -> int:
    """A time in ms (an integer, or its text) -> ns; ValueError past int64 nanoseconds."""
    ns = int(ms) * 1_000_000
    if MIN_NS <= ns <= MAX_NS:
        return ns
    raise ValueError(f"time {ms!r} ms is out of range")


def _level(level) -> tuple:
    """A ``{px, sz, n}`` level as (price, size); a missing one (null) as (None, None)."""
    return (None, None) if level is None else (float(level["px"]), float(level["sz"]))


def _trades(data) -> list:
    return [(_ns(t["time"]), t["coin"], str(t["tid"]), SIDES.get(t["side"], "unknown"),
             float(t["px"]), float(t["sz"])) for t in data]


def _quotes(data) -> list:
    bid, ask = data["bbo"]
    return [(_ns(data["time"]), data["coin"], *_level(bid), *_level(ask))]


def _book_changes(data) -> list:
    t, coin = _ns(data["time"]), data["coin"]
    bids, asks = data["levels"]
    rows = [(t, coin, True, side, float(lv["px"]), float(lv["sz"]))
            for side, levels in (("bid", bids), ("ask", asks)) for lv in levels]
    return rows or [(t, coin, True, None, None, None)]   # an empty book


def _bars(data) -> list:
    """A candle (an object on the wire; a list of them is taken too)."""
    return [(_ns(c["t"]), c["s"], c["i"], float(c["o"]), float(c["h"]), float(c["l"]),
             float(c["c"]), float(c["v"]), None if c.get("n") is None else int(c["n"]))
            for c in (data if isinstance(data, list) else (data,))]


_ROWS = {"trades": _trades, "quotes": _quotes, "book_changes": _book_changes, "bars": _bars}
