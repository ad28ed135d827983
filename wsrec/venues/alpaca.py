"""Alpaca market data stream: welcome, auth, subscribe, then arrays of typed messages.

Protocol (venue-docs/alpaca.md, PROTOCOLS.md section 1): the server greets with
``[{"T":"success","msg":"connected"}]``; the client authenticates (message or upgrade
headers) within 10 s; after ``authenticated`` it subscribes and the server answers
with the whole subscription set. Data frames are arrays of objects keyed by ``T``,
possibly mixing types and symbols. With ``Content-Type: application/msgpack`` every
frame is binary msgpack (option feeds accept nothing else).

Exchange time (``exch_ts``): a frame's first ``t`` (RFC 3339, nanoseconds), else a news
item's ``updated_at``; in msgpack frames the same fields are msgpack Timestamps.

Normalized tables (``wsrec.venues.normalize``), each row stamped with its own item's ``t``:

* trades: ``T`` ``t`` items. ``id`` is ``i`` (none on option feeds); ``side`` is crypto's
  ``tks`` (taker side: B buy, S sell), ``unknown`` for stocks and options, whose feeds
  don't say.
* quotes: ``T`` ``q`` items; a side whose size is 0 is empty (null).
* bars: ``b`` (minute bars, interval ``1m``), ``u`` (a minute bar updated by late trades,
  ``1m``) and ``d`` (daily bars, ``1d``); ``trades`` is ``n``. ``exch_ts`` is the bar's start.
* book_changes: crypto ``orderbooks`` (``o``): ``r:true`` is a full book (snapshot rows),
  else changed levels; a level of size 0 is gone.

Corrections, cancel errors, statuses, LULDs and news have no table.
"""

from __future__ import annotations

import json
import re

import msgpack

from wsrec.timefmt import MAX_NS, MIN_NS, NS, check_ns, format_ns, parse_time
from wsrec.errors import UsageError
from wsrec.venues.base import (BAD, NONE, Request, Server, Step, Stream, Venue, compact,
                               endpoint, loads, strings)

__all__ = ["Alpaca", "AlpacaStream", "AlpacaServer", "FEEDS", "feed_of", "offer", "TYPES",
           "FATAL_CODES", "ERRORS", "decode_msgpack", "rfc3339", "rfc3339_ns", "text_item",
           "packed_item"]

HOST = "wss://stream.data.alpaca.markets"
SANDBOX = "wss://stream.data.sandbox.alpaca.markets"

STOCK_CHANNELS = ["trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses",
                  "lulds", "corrections", "cancelErrors"]
#: feed -> (path, channels, default channels)
FEEDS = {
    "test": ("v2/test", STOCK_CHANNELS, ["trades", "quotes", "bars"]),
    "iex": ("v2/iex", STOCK_CHANNELS, ["trades", "quotes", "bars"]),
    "sip": ("v2/sip", STOCK_CHANNELS, ["trades", "quotes", "bars"]),
    "delayed_sip": ("v2/delayed_sip", STOCK_CHANNELS, ["trades", "quotes", "bars"]),
    "crypto": ("v1beta3/crypto/us", ["trades", "quotes", "bars", "updatedBars", "dailyBars",
                                     "orderbooks"], ["trades", "quotes", "bars"]),
    "indicative": ("v1beta1/indicative", ["trades", "quotes"], ["trades", "quotes"]),
    "opra": ("v1beta1/opra", ["trades", "quotes"], ["trades", "quotes"]),
    "news": ("v1beta1/news", ["news"], ["news"]),
}
OPTION_FEEDS = {"indicative", "opra"}
#: T code -> channel
TYPES = {"t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars", "d": "dailyBars",
         "s": "statuses", "l": "lulds", "c": "corrections", "x": "cancelErrors",
         "o": "orderbooks", "n": "news"}
#: error code -> the server's text
ERRORS = {400: "invalid syntax", 401: "not authenticated", 402: "auth failed",
          403: "already authenticated", 404: "auth timeout", 405: "symbol limit exceeded",
          406: "connection limit exceeded", 407: "slow client", 409: "insufficient subscription",
          410: "invalid subscribe action for this feed", 411: "insufficient scope",
          412: "option messages are only available in MsgPack format",
          413: "star subscription is not allowed for option quotes", 500: "internal error"}
#: errors that reconnecting can't cure
FATAL_CODES = {400, 402, 405, 406, 409, 410, 411, 412, 413}
KEY_ENV, SECRET_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
#: the free plan's symbol limit for trades and quotes (the iex feed)
FREE_SYMBOL_LIMIT = 30

#: where a JSON frame's exchange time is: the first ``t`` (every market data message
#: has one; no other object in a frame does), else a news item's ``updated_at``
EXCH_TIME = ((rb'"t":\s*"(?P<t>[^"]{1,40})"', "rfc3339"),
             (rb'"updated_at":\s*"(?P<t>[^"]{1,40})"', "rfc3339"))
#: normalized table -> the channels whose frames carry its rows
NORMALIZED = {"trades": ("trades",), "quotes": ("quotes",),
              "bars": ("bars", "updatedBars", "dailyBars"), "book_changes": ("orderbooks",)}
#: bar T code -> its interval: minute bars, minute bars updated by late trades, daily bars
BAR_INTERVALS = {"b": "1m", "u": "1m", "d": "1d"}
#: crypto trades' ``tks`` (the taker's side) -> trades.side
TAKER_SIDES = {"B": "buy", "S": "sell"}

_T = re.compile(rb'"T":"(\w+)"')
_S = re.compile(rb'"S":"([^"]*)"')
_NEWS_SYMBOLS = re.compile(rb'"symbols":\[([^\]]*)\]')


class AlpacaStream(Stream):
    def __init__(self, url: str, key: str, secret: str, subscribe: dict, *,
                 auth_headers: bool, msgpack_mode: bool):
        self.url = url
        self.key, self.secret = key, secret
        self.subscription = subscribe
        self.auth_headers = auth_headers
        self.binary_in = msgpack_mode
        self.headers = {}
        if auth_headers:
            self.headers.update({"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret})
        if msgpack_mode:
            self.headers["Content-Type"] = "application/msgpack"
        self.state = "welcome"

    def secrets(self) -> list[str]:
        return [s for s in (self.key, self.secret) if s]

    def reset(self) -> None:
        self.state = "welcome"  # no resume: auth and subscribe again

    def auth_message(self) -> bytes:
        return compact({"action": "auth", "key": self.key, "secret": self.secret})

    def subscribe_message(self) -> bytes:
        return compact({"action": "subscribe", **self.subscription})

    def receive(self, payload: bytes, text: bool):
        if not text:
            return self._receive_msgpack(payload)
        types = _T.findall(payload)
        if len(types) == 1 and len(types[0]) > 1:  # success, error, subscription
            return self._control(json.loads(payload))
        channels = tuple(dict.fromkeys(TYPES.get(t.decode(), t.decode()) for t in types))
        symbols = [s.decode() for s in _S.findall(payload)]
        if b'"T":"n"' in payload:
            for group in _NEWS_SYMBOLS.findall(payload):
                symbols.extend(x.strip().strip('"') for x in group.decode().split(",") if x)
        return channels, tuple(dict.fromkeys(symbols)), None

    def _receive_msgpack(self, payload: bytes):
        try:
            items = decode_msgpack(payload)
        except Exception:  # noqa: BLE001 - not msgpack: store it, don't classify it
            return NONE, NONE, None
        if not isinstance(items, list):
            return NONE, NONE, None
        if len(items) == 1 and isinstance(items[0], dict) and \
                items[0].get("T") in _CONTROL:
            return self._control(items)
        channels, symbols = [], []
        for item in items:
            if isinstance(item, dict):
                t = item.get("T")
                channels.append(TYPES.get(t, t))
                if isinstance(item.get("S"), str):
                    symbols.append(item["S"])
                elif isinstance(item.get("symbols"), list):
                    symbols.extend(s for s in item["symbols"] if isinstance(s, str))
        return tuple(dict.fromkeys(channels)), tuple(dict.fromkeys(symbols)), None

    def _control(self, items):
        msg = items[0] if isinstance(items, list) and items else {}
        kind = msg.get("T")
        channels = (kind,) if isinstance(kind, str) else NONE
        if kind == "success" and msg.get("msg") == "connected":
            if self.auth_headers:
                self.state = "auth"  # the server authenticates from the headers
                return channels, NONE, None
            self.state = "auth"
            return channels, NONE, Step(send=[self.auth_message()])
        if kind == "success" and msg.get("msg") == "authenticated":
            self.state = "subscribe"
            return channels, NONE, Step(send=[self.subscribe_message()])
        if kind == "subscription":
            self.state = "ready"
            return channels, NONE, Step(ready=True)
        if kind == "error":
            code, text = msg.get("code"), msg.get("msg", "")
            what = f"alpaca error {code}: {text}"
            if code in FATAL_CODES:
                return channels, NONE, Step(fatal=what)
            return channels, NONE, Step(retry=what)
        return channels, NONE, None


class Alpaca(Venue):
    name = "alpaca"
    title = "Alpaca market data stream (stocks, crypto, options, news)"
    symbols = "tickers (AAPL, FAKEPACA; BTC/USD on crypto feeds; '*' for all)"
    example_symbols = ("AAPL", "MSFT", "NVDA", "SPY", "TSLA", "FAKEPACA", "BTC/USD",
                       "ETH/USD")
    endpoints = {f: f"{HOST}/{path}" for f, (path, _, _) in FEEDS.items()}
    endpoints["sandbox"] = f"{SANDBOX}/{{path}}"
    channels = {**{c: f"stocks/crypto {c}" for c in STOCK_CHANNELS},
                "orderbooks": "crypto order books", "news": "news articles"}
    default_channels = ["trades", "quotes", "bars"]
    params = {
        "feed": "test, iex, sip, delayed_sip, crypto, indicative, opra, news "
                "(default: test when every symbol is FAKEPACA, else iex)",
        "auth": "message (default) or headers",
        "msgpack": "true to ask for binary msgpack frames (automatic on option feeds)",
        "sandbox": "true for the sandbox host",
        "symbol_limit": f"refuse more symbols than this (default {FREE_SYMBOL_LIMIT} on iex, "
                        f"the free plan's limit; none elsewhere)",
    }
    credentials = {KEY_ENV: "API key id", SECRET_ENV: "API secret key"}
    watchdog = 60.0      # the SDK reconnects after 60 s without data
    heartbeat = 10.0     # protocol pings, as the SDK sends them
    exch_time = EXCH_TIME
    normalized = NORMALIZED

    def exch_ts(self, payloads, kinds):
        """JSON frames by ``exch_time``; msgpack (binary) frames decoded one by one, their
        first ``t`` Timestamp (else a news item's ``updated_at``)."""
        import pyarrow as pa               # here: ``wsrec venues`` doesn't load pyarrow
        import pyarrow.compute as pc
        times = super().exch_ts(payloads, kinds)
        binary = pc.fill_null(pc.equal(kinds, "binary"), False)
        if not pc.any(binary).as_py():
            return times
        packed = pa.array([packed_time(p) if b else None for p, b in
                           zip(payloads.to_pylist(), binary.to_pylist())], pa.int64())
        return pc.if_else(binary, packed.cast(times.type), times)

    def decode(self, payload: bytes, text: bool):
        if text:
            return json.loads(payload)
        try:
            return decode_msgpack(payload)
        except (msgpack.UnpackException, TypeError, RecursionError) as exc:
            raise ValueError(f"not msgpack: {exc}") from None

    def normalize(self, table, message, channel, state):
        if not isinstance(message, list):
            raise TypeError(f"an alpaca frame is an array, not {type(message).__name__}")
        return _ROWS[table](message)

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        symbols = request.symbols
        feed = feed_of(request)
        if feed not in FEEDS:
            raise UsageError(f"alpaca: unknown feed {feed!r} (choose from {', '.join(FEEDS)})")
        path, allowed, defaults = FEEDS[feed]
        channels = request.channels or defaults
        bad = [c for c in channels if c not in allowed]
        if bad:
            raise UsageError(f"alpaca: feed {feed} has no channel(s) {', '.join(bad)} "
                             f"(it offers {', '.join(allowed)})")
        if not symbols:
            if feed != "news":
                raise UsageError("alpaca: give --symbols (e.g. --symbols FAKEPACA, or '*')")
            symbols = ["*"]
        limit = request.param("symbol_limit", FREE_SYMBOL_LIMIT if feed == "iex" else None)
        if limit is not None and "*" not in symbols and len(symbols) > int(limit):
            raise UsageError(f"alpaca: {len(symbols)} symbols exceed the symbol limit of "
                             f"{limit}; pass --param symbol_limit=N if your plan allows more")
        key, secret = request.env.get(KEY_ENV), request.env.get(SECRET_ENV)
        for var, value in ((KEY_ENV, key), (SECRET_ENV, secret)):
            if not value:
                raise UsageError(f"alpaca: set {var} (your Alpaca API credentials), or "
                                 f"record from the simulator with --sim")
        auth = request.param("auth", "message")
        if auth not in ("message", "headers"):
            raise UsageError("alpaca: --param auth must be 'message' or 'headers'")
        host = SANDBOX if request.flag("sandbox") else HOST
        url = endpoint(request.url, f"{host}/{path}", path)
        stream = AlpacaStream(url, key, secret, {c: list(symbols) for c in channels},
                              auth_headers=auth == "headers",
                              msgpack_mode=feed in OPTION_FEEDS or request.flag("msgpack"))
        stream.name = feed
        return [stream]


def feed_of(request: Request) -> str:
    """The feed a request records: ``--param feed``, else test when every symbol is
    FAKEPACA, else iex."""
    symbols = request.symbols
    return request.param("feed") or (
        "test" if symbols and all(s == "FAKEPACA" for s in symbols) else "iex")


def offer(request: Request) -> dict[str, set]:
    """What a connection made for ``request`` carries: channel -> symbols (``*``: all);
    trades bring corrections and cancel errors."""
    feed = feed_of(request)
    channels = request.channels or (FEEDS[feed][2] if feed in FEEDS else [])
    symbols = set(request.symbols or ["*"])
    carried = {c: symbols for c in channels}
    if "trades" in carried:
        carried.setdefault("corrections", symbols)
        carried.setdefault("cancelErrors", symbols)
    return carried


# -- the server side -----------------------------------------------------------------------

#: the feed served at each URL path
PATHS = {"/" + path: feed for feed, (path, _, _) in FEEDS.items()}
_STOCK_FEEDS = {"test", "iex", "sip", "delayed_sip"}
_SYMBOL = re.compile(r"^[A-Z0-9./*:-]+$")
_CONTROL = {"success", "error", "subscription"}
#: the fields of a message that hold a time: RFC 3339 text in JSON, a Timestamp in msgpack
TIME_FIELDS = ("t", "created_at", "updated_at")


class AlpacaServer(Server):
    """Alpaca's side of one connection (PROTOCOLS.md section 1).

    The feed is the URL path (``/v2/iex``, ``/v1beta3/crypto/us``, ...): it decides the
    channels a client may subscribe to (410 for others), the lists of every
    subscription ack, and that option feeds speak msgpack only (412). On a path that is
    no feed's, every channel is taken and acks list the stock channels. A connection
    whose upgrade asked for ``Content-Type: application/msgpack`` gets binary msgpack
    frames, with Timestamps for times, else JSON text. Auth by message or by upgrade
    headers; ``accept(key, secret)`` decides (any non-empty pair by default).
    ``symbol_limit``: at most that many distinct trade and quote symbols (405).
    ``offered``: a subscription to a channel outside it gets 410 (invalid subscribe
    action for this feed), to a symbol outside it (``*`` included, unless offered) 409
    (insufficient subscription), as a plan that doesn't cover them would.
    """

    def __init__(self, path="/", headers=None, *, symbol_limit: int | None = None,
                 offered: Request | None = None):
        super().__init__(path, headers, offered=offered)
        self.carried = None if offered is None else offer(offered)
        self.feed = PATHS.get(path.split("?")[0])
        self.packed = self.headers.get("Content-Type", "").lower() == "application/msgpack"
        self.symbol_limit = symbol_limit
        self.subs: dict[str, set] = {}
        self.authed = False
        self.ready = False

    paths = tuple(PATHS)
    default_path = "/v2/test"

    @classmethod
    def refuse(cls, path):
        return None if path.split("?")[0] in PATHS else f"no feed at {path}"

    def accept(self, key, secret) -> bool:
        return bool(key) and bool(secret)

    def send_items(self, items: list[dict]) -> None:
        self.out.append(self.pack(items))

    def pack(self, items: list[dict]) -> tuple[bytes, bool]:
        """Items as this connection gets them: msgpack (binary) or JSON (text)."""
        if self.packed:
            return msgpack.packb([packed_item(i) for i in items]), False
        return compact([text_item(i) for i in items]), True

    def error(self, code: int, close: bool = False) -> None:
        self.send_items([{"T": "error", "code": code, "msg": ERRORS[code]}])
        if close:
            self.close = (1000 if code == 404 else 1008, ERRORS[code])

    def internal_error(self) -> None:
        self.error(500)

    def start(self) -> None:
        self.send_items([{"T": "success", "msg": "connected"}])
        if self.feed in OPTION_FEEDS and not self.packed:
            return self.error(412, close=True)
        key = self.headers.get("APCA-API-KEY-ID")
        if key is not None:
            if not self.accept(key, self.headers.get("APCA-API-SECRET-KEY")):
                return self.error(402, close=True)
            self.authed = True
            self.send_items([{"T": "success", "msg": "authenticated"}])

    def receive(self, message) -> None:
        if isinstance(message, str):
            msg = loads(message)
        else:
            try:
                msg = msgpack.unpackb(message)
            except (ValueError, TypeError, msgpack.UnpackException, RecursionError):
                msg = BAD
        if not isinstance(msg, dict) or not isinstance(msg.get("action"), str):
            return self.error(400)
        action = msg["action"]
        if action == "auth":
            if any(k in msg and not isinstance(msg[k], str) for k in ("key", "secret")):
                return self.error(400)
            if self.authed:
                return self.error(403)
            if not self.accept(msg.get("key"), msg.get("secret")):
                return self.error(402, close=True)
            self.authed = True
            return self.send_items([{"T": "success", "msg": "authenticated"}])
        if action not in ("subscribe", "unsubscribe"):
            return self.error(400)
        if not self.authed:
            return self.error(401)
        changes = {k: v for k, v in msg.items() if k != "action"}
        allowed = FEEDS[self.feed][1] if self.feed else None
        for channel, symbols in changes.items():
            if allowed is not None and channel not in allowed:
                return self.error(410)
            if not isinstance(channel, str) or not strings(symbols) or \
                    not all(_SYMBOL.match(s) for s in symbols):
                return self.error(400)
            if self.feed in OPTION_FEEDS and channel == "quotes" and "*" in symbols:
                return self.error(413)
        if action == "subscribe" and self.carried is not None:
            for channel, symbols in changes.items():
                carried = self.carried.get(channel)
                if carried is None:
                    return self.error(410)
                if "*" not in carried and not carried.issuperset(symbols):
                    return self.error(409)
        new = {c: set(s) for c, s in self.subs.items()}
        for channel, symbols in changes.items():
            target = new.setdefault(channel, set())
            (target.update if action == "subscribe" else target.difference_update)(symbols)
        distinct = {s for c in ("trades", "quotes") for s in new.get(c, ()) if s != "*"}
        if self.symbol_limit is not None and len(distinct) > self.symbol_limit:
            return self.error(405)
        self.subs = new
        if self.feed is None or self.feed in _STOCK_FEEDS:
            names = list(dict.fromkeys([*STOCK_CHANNELS, *new]))
        else:
            names = FEEDS[self.feed][1]
        ack = {"T": "subscription"}
        for name in names:
            ack[name] = sorted(new.get(name, ()))
            if name in ("corrections", "cancelErrors"):  # trades subscribe to both
                ack[name] = sorted(new.get("trades", set()) | new.get(name, set()))
        self.send_items([ack])
        self.ready = True

    def wants(self, channel: str | None, symbol: str | None) -> bool:
        syms = self.subs.get(channel or "")
        return bool(syms) and ("*" in syms or symbol in syms)

    def signature(self):
        return self.packed, frozenset((c, frozenset(s)) for c, s in self.subs.items())

    def render(self, payload, text, channels, symbols):
        """A data array cut down to the subscribed elements (the bytes as they are when
        every element is wanted and the format is the connection's)."""
        if not channels or set(channels) & _CONTROL:
            return []
        pairs = [(c, s) for c in channels for s in symbols or [None]]
        if all(self.wants(c, s) for c, s in pairs) and text != self.packed:
            return [(payload, text)]
        if not any(self.wants(c, s) for c, s in pairs):
            return []
        items = json.loads(payload) if text else decode_msgpack(payload)
        keep = [i for i in items if isinstance(i, dict) and self.wants(
            TYPES.get(i.get("T"), i.get("T")),
            i.get("S") if "S" in i else next(iter(i.get("symbols") or []), None))]
        return [self.pack(keep)] if keep else []


# -- msgpack Timestamps and RFC 3339 -----------------------------------------------------------

def decode_msgpack(payload: bytes):
    """msgpack -> a value (Timestamps stay ``msgpack.Timestamp``; ``rfc3339`` formats them)."""
    return msgpack.unpackb(payload, timestamp=0, strict_map_key=False, raw=False)


def rfc3339(ts: msgpack.Timestamp) -> str:
    """A msgpack Timestamp as the JSON frames carry it: ``2026-11-18T11:06:40.500000000Z``."""
    return format_ns(ts.to_unix_nano())


def text_item(item: dict) -> dict:
    """An item for a JSON frame: Timestamps (and nanosecond ints in the time fields) as
    RFC 3339 text."""
    out = {}
    for k, v in item.items():
        if isinstance(v, msgpack.Timestamp):
            v = rfc3339(v)
        elif k in TIME_FIELDS and isinstance(v, int) and not isinstance(v, bool):
            v = format_ns(v)
        out[k] = v
    return out


def packed_item(item: dict) -> dict:
    """An item for a msgpack frame: the time fields (RFC 3339 text or nanosecond ints)
    as Timestamps."""
    out = dict(item)
    for k in TIME_FIELDS:
        v = out.get(k)
        try:
            if isinstance(v, str):
                out[k] = msgpack.Timestamp.from_unix_nano(parse_time(v))
            elif isinstance(v, int) and not isinstance(v, bool):
                out[k] = msgpack.Timestamp.from_unix_nano(v)
        except ValueError:
            pass
    return out


_MINUTES: dict[str, int] = {}   # "2024-07-24T07:56" -> its ns since the epoch
_MINUTES_KEPT = 4096


def rfc3339_ns(text: str) -> int:
    """Alpaca's RFC 3339 time (``2024-07-24T07:56:53.639713735Z``) -> ns since the epoch.

    Fast for the venue's own form (UTC, ``Z``, 0 to 9 fraction digits): the minute is
    looked up in a cache, the rest is integer arithmetic. Anything else goes through
    ``parse_time`` (ValueError when it is no time)."""
    if len(text) >= 20 and text[-1] == "Z" and text[16] == ":" and text[19] in ".Z" and \
            text[:4] < "2262":   # int64 nanoseconds end in 2262: parse_time says so
        base = _MINUTES.get(text[:16])
        if base is None:
            if len(_MINUTES) >= _MINUTES_KEPT:
                _MINUTES.clear()
            base = _MINUTES[text[:16]] = parse_time(text[:16] + "Z")
        seconds, fraction = text[17:19], text[20:-1]
        if seconds.isdigit() and len(fraction) <= 9 and (
                fraction.isdigit() if text[19] == "." else not fraction):
            return base + int(seconds) * NS + (int(fraction.ljust(9, "0")) if fraction else 0)
    return parse_time(text)


# -- normalized tables ---------------------------------------------------------------------

def packed_time(payload: bytes) -> int | None:
    """A msgpack frame's exchange time (ns): the first item's ``t`` Timestamp, else a
    news item's ``updated_at``; None when it has neither or is not msgpack."""
    try:
        items = decode_msgpack(payload)
    except Exception:  # noqa: BLE001 - any undecodable frame simply has no time
        return None
    if not isinstance(items, list):
        return None
    dicts = [i for i in items if isinstance(i, dict)]
    for key in ("t", "updated_at"):
        for item in dicts:
            value = item.get(key)
            if isinstance(value, msgpack.Timestamp):
                ns = value.to_unix_nano()
                return ns if MIN_NS <= ns <= MAX_NS else None
    return None


def _time_ns(value) -> int:
    """An item's time: RFC 3339 text (JSON frames) or a msgpack Timestamp."""
    if type(value) is str:
        return rfc3339_ns(value)
    return check_ns(value.to_unix_nano(), value)


def _side(price, size) -> tuple:
    """A quote side as (price, size); an empty side (size 0) is (None, None)."""
    return (float(price), float(size)) if size else (None, None)


def _trades(items: list) -> list:
    return [(_time_ns(i["t"]), i["S"], None if i.get("i") is None else str(i["i"]),
             TAKER_SIDES.get(i.get("tks"), "unknown"), float(i["p"]), float(i["s"]))
            for i in items if i.get("T") == "t"]


def _quotes(items: list) -> list:
    return [(_time_ns(i["t"]), i["S"], *_side(i["bp"], i["bs"]), *_side(i["ap"], i["as"]))
            for i in items if i.get("T") == "q"]


def _bars(items: list) -> list:
    rows = []
    for i in items:
        interval = BAR_INTERVALS.get(i.get("T"))
        if interval is not None:
            n = i.get("n")
            rows.append((_time_ns(i["t"]), i["S"], interval, float(i["o"]), float(i["h"]),
                         float(i["l"]), float(i["c"]), float(i["v"]),
                         None if n is None else int(n)))
    return rows


def _book_changes(items: list) -> list:
    rows = []
    for i in items:
        if i.get("T") != "o":
            continue
        t, symbol, full = _time_ns(i["t"]), i["S"], i.get("r") is True
        before = len(rows)
        for side, levels in (("bid", i.get("b") or ()), ("ask", i.get("a") or ())):
            rows.extend((t, symbol, full, side, float(lv["p"]), float(lv["s"]))
                        for lv in levels)
        if full and len(rows) == before:
            rows.append((t, symbol, True, None, None, None))   # an empty book
    return rows


_ROWS = {"trades": _trades, "quotes": _quotes, "bars": _bars, "book_changes": _book_changes}
