"""Vega data node: one stream per URL path, filters in the query, no client messages.

Protocol (venue-docs/vega.md, PROTOCOLS.md section 3): connecting to
``/api/v2/stream/<path>?<filters>`` subscribes; frames are ``{"result":{...}}``;
``accounts``, ``orders`` and ``positions`` begin with a snapshot in pages of 50
(the last page has ``"lastPage":true``); an ``{"error":...}`` frame ends the stream.
No ping, no resume: reconnect and take the new snapshot.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from wsrec.errors import UsageError
from wsrec.lists import split_list
from wsrec.venues.base import NONE, Request, Server, Step, Stream, Venue, endpoint

__all__ = ["Vega", "VegaStream", "VegaServer", "PATHS", "GRPC_CODES"]

DEFAULT_HOST = "wss://api.n07.testnet.vega.xyz"
PREFIX = "api/v2/stream"

#: path -> (query filters it takes, the filter that symbols (market ids) fill)
PATHS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "accounts": (("marketId", "partyId", "asset", "type", "includeDerivedParties"),
                 "marketId"),
    "orders": (("marketIds", "partyIds", "excludeLiquidity"), "marketIds"),
    "positions": (("partyId", "marketId", "includeDerivedParties"), "marketId"),
    "markets/depth": (("marketIds",), "marketIds"),
    "markets/depth/updates": (("marketIds",), "marketIds"),
    "markets/data": (("marketIds",), "marketIds"),
    "candle/data": (("candleId",), None),
    "trades": (("marketIds", "partyIds"), "marketIds"),
    "votes": (("partyId", "proposalId"), None),
    "margin/levels": (("partyId", "marketId"), "marketId"),
    "governance": (("partyId",), None),
    "ledger/movements": ((), None),
    "liquidity-provisions": (("marketId", "partyId"), "marketId"),
    "transaction-results": (("partyIds", "hashes", "status"), None),
}
#: gRPC status codes
GRPC_CODES = {1: "Cancelled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded",
              5: "NotFound", 6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted",
              9: "FailedPrecondition", 10: "Aborted", 11: "OutOfRange", 12: "Unimplemented",
              13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated"}
#: gRPC codes that say the request itself is wrong
_INVALID = {3, 5, 7, 9, 11, 12}

_MARKET = re.compile(rb'"marketId":"([0-9a-fA-F]+)"')


class VegaStream(Stream):
    def __init__(self, url: str, path: str):
        self.url = url
        self.path = path
        self._channels = (path,)

    def opening(self) -> list[bytes]:
        return []

    def receive(self, payload: bytes, text: bool):
        if payload.startswith(b'{"error"'):
            return ("error",), NONE, self._error(payload)
        markets = _MARKET.findall(payload)
        symbols = tuple(dict.fromkeys(m.decode() for m in markets)) if markets else NONE
        step = Step(ready=True) if b'"lastPage":true' in payload or \
            payload.startswith(b'{"result":{"updates"') else None
        return self._channels, symbols, step

    def _error(self, payload: bytes) -> Step:
        try:
            err = json.loads(payload)["error"]
            code, message = err.get("code"), err.get("message", "")
        except (ValueError, KeyError, AttributeError):
            code, message = None, payload[:200].decode(errors="replace")
        what = f"vega {self.path}: error {code}: {message}"
        return Step(fatal=what) if code in _INVALID else Step(retry=what)


class Vega(Venue):
    name = "vega"
    title = "Vega data node streams (one connection per stream path)"
    symbols = "market ids (64 hex) as the stream's marketIds (or marketId) filter"
    endpoints = {"testnet": f"{DEFAULT_HOST}/{PREFIX}/<path>"}
    channels = {p: f"/{PREFIX}/{p} (filters: {', '.join(f) or 'none'})"
                for p, (f, _) in PATHS.items()}
    default_channels = ["trades"]
    params = {f: "stream filter (comma list for the plural ones)"
              for p, (fs, _) in PATHS.items() for f in fs}
    watchdog = None      # a quiet market sends nothing for long stretches: no watchdog
    heartbeat = 20.0     # protocol pings keep NATs and proxies from dropping the socket

    def streams(self, request: Request) -> list[Stream]:
        channels = self.check_channels(request)
        self.check_params(request)
        out = []
        for path in channels:
            filters, market_key = PATHS[path]
            query: list[tuple[str, str]] = []
            if request.symbols:
                if market_key is None:
                    raise UsageError(f"vega: stream {path} takes no market filter; drop "
                                     f"--symbols or use --param")
                if not market_key.endswith("s") and len(request.symbols) > 1:
                    raise UsageError(f"vega: stream {path} takes a single market id")
                query.extend((market_key, m) for m in request.symbols)
            for key, value in request.params.items():
                if key not in filters:
                    continue
                values = split_list(value, seps=",|") if key.endswith("s") else [value]
                query.extend((key, v) for v in values)
            if path == "candle/data" and not request.param("candleId"):
                raise UsageError("vega: candle/data needs --param candleId=...")
            url = endpoint(request.url, f"{DEFAULT_HOST}/{PREFIX}/{path}", f"{PREFIX}/{path}")
            if request.url and not url.rstrip("/").endswith(path):
                url = url.rstrip("/") + "/" + path
            if query:
                url += ("&" if "?" in url else "?") + urlencode(query)
            stream = VegaStream(url, path)
            stream.name = path
            out.append(stream)
        return out


# -- the server side -----------------------------------------------------------------------

class VegaServer(Server):
    """Vega's side of one connection (PROTOCOLS.md section 3).

    The URL path (``/api/v2/stream/<path>``) picks the stream and its query the filters
    (repeated keys for lists); an unknown filter or a missing ``candleId`` is answered
    with a gRPC InvalidArgument error frame that ends the stream. Client messages are
    ignored. A data frame goes out when it is of the stream and, with a market filter,
    of one of those markets. On a path that is no stream's, no filter is checked.
    """

    def __init__(self, path="/", headers=None):
        super().__init__(path, headers)
        parts = urlsplit(path)
        stream = parts.path.strip("/")
        if stream.startswith(PREFIX + "/"):
            stream = stream[len(PREFIX) + 1:]
        self.stream = stream
        self.query = parse_qsl(parts.query)
        self.markets = [v for k, v in self.query if k in ("marketIds", "marketId")]

    @classmethod
    def refuse(cls, path):
        path = urlsplit(path).path.strip("/")
        if not path.startswith(PREFIX + "/") or path[len(PREFIX) + 1:] not in PATHS:
            return f"no stream at /{path}"
        return None

    def error(self, code: int, message: str) -> None:
        """An error frame, and the end of the stream."""
        self.reply({"error": {"code": code, "message": message,
                              "details": [{"code": 10000 + code, "message": message}]}})
        self.close = (1000, "")

    def start(self) -> None:
        filters, _ = PATHS.get(self.stream, (None, None))
        if filters is None:
            return
        bad = [k for k, _ in self.query if k not in filters]
        if bad:
            return self.error(3, f"unknown filter {bad[0]}")
        if self.stream == "candle/data" and not any(k == "candleId" for k, _ in self.query):
            return self.error(3, "candleId is required")

    def render(self, payload, text, channels, symbols):
        if list(channels or ()) != [self.stream]:
            return []
        if self.markets and symbols and not set(self.markets) & set(symbols):
            return []
        return [(payload, text)]
