"""Alpaca market data stream: welcome, auth, subscribe, then arrays of typed messages.

Protocol (venue-docs/alpaca.md, PROTOCOLS.md section 1): the server greets with
``[{"T":"success","msg":"connected"}]``; the client authenticates (message or upgrade
headers) within 10 s; after ``authenticated`` it subscribes and the server answers
with the whole subscription set. Data frames are arrays of objects keyed by ``T``,
possibly mixing types and symbols. With ``Content-Type: application/msgpack`` every
frame is binary msgpack (option feeds accept nothing else).
"""

from __future__ import annotations

import json
import re

import msgpack

from wsrec.venues.base import NONE, Request, Step, Stream, UsageError, Venue, endpoint

__all__ = ["Alpaca", "AlpacaStream", "FEEDS", "TYPES", "FATAL_CODES"]

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
#: errors that reconnecting can't cure
FATAL_CODES = {400, 402, 405, 406, 409, 410, 411, 412, 413}
KEY_ENV, SECRET_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
#: the free plan's symbol limit for trades and quotes (the iex feed)
FREE_SYMBOL_LIMIT = 30

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
        return json.dumps({"action": "auth", "key": self.key, "secret": self.secret},
                          separators=(",", ":")).encode()

    def subscribe_message(self) -> bytes:
        return json.dumps({"action": "subscribe", **self.subscription},
                          separators=(",", ":")).encode()

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
            items = msgpack.unpackb(payload, timestamp=0, strict_map_key=False)
        except Exception:  # noqa: BLE001 - not msgpack: store it, don't classify it
            return NONE, NONE, None
        if not isinstance(items, list):
            return NONE, NONE, None
        if len(items) == 1 and isinstance(items[0], dict) and \
                items[0].get("T") in ("success", "error", "subscription"):
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

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        symbols = request.symbols
        feed = request.param("feed") or (
            "test" if symbols and all(s == "FAKEPACA" for s in symbols) else "iex")
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
        if request.sim:
            key, secret = "sim-key", "sim-secret"
        else:
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
