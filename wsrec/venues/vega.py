"""Vega data node: one stream per URL path, filters in the query, no client messages.

Protocol (venue-docs/vega.md, PROTOCOLS.md section 3): connecting to
``/api/v2/stream/<path>?<filters>`` subscribes; frames are ``{"result":{...}}``;
``accounts``, ``orders`` and ``positions`` begin with a snapshot in pages of 50
(the last page has ``"lastPage":true``); an ``{"error":...}`` frame ends the stream.
No ping, no resume: reconnect and take the new snapshot.

The data node's JSON is protobuf's: camelCase keys, enums as integers, int64 values as
strings, zero values and empty lists left out. Prices and sizes are integers in the
market's smallest units (its decimal places are market metadata, not in the stream).

Exchange time (``exch_ts``): the first ``timestamp`` (trades, market data, ledger
movements, margin levels, votes: int64 nanoseconds), else a candle's ``lastUpdate``,
else ``updatedAt``, else ``createdAt`` (orders, positions, liquidity provisions). Market
depth carries no time: null.

Normalized tables (``wsrec.venues.normalize``):

* trades: ``trades`` (``result.trades``), stamped with each trade's ``timestamp``;
  ``side`` is the ``aggressor`` (1 buy, 2 sell; left out, in an auction: unknown).
* quotes: ``markets/data`` (``result.marketData``): ``bestBidPrice``/``bestBidVolume``,
  ``bestOfferPrice``/``bestOfferVolume`` of the ``market``; a side with no volume is
  empty (null).
* book_changes: ``markets/depth`` (``result.marketDepth``, each market's whole book:
  snapshot rows) and ``markets/depth/updates`` (``result.update``, the levels that
  changed; a level without ``volume`` is gone). Sizes are ``volume``: AMM volume is sent
  only in the whole book (``ammVolume``), never in updates, so it is left out of both.
  Books and updates are followed per market and connection by ``sequenceNumber``: one
  no newer than the last applied is skipped (a repeat, or older than the book already
  built). After a gap (``previousSequenceNumber`` is not the last ``sequenceNumber``)
  updates are still applied: the levels changed by the missed updates stay stale until
  the next whole book (``markets/depth``); ``wsrec verify --deep`` reports the gap
  (``check_sequence``). Whole books and updates are two streams, so two connections:
  book snapshots apply both in the order received, and an update is never compared
  with a book of the other connection (an update as old as that book applies the same
  absolute levels again: sizes are levels' totals, not differences).
* bars: ``candle/data`` (``result.candle``), stamped with the candle's ``start``; the
  symbol (market) and interval come from the ``candleId`` of the connection's URL (the
  frames don't carry them: ``state["url"]``); no trade count.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from wsrec.errors import UsageError
from wsrec.lists import split_list
from wsrec.venues.base import NONE, UNAVAILABLE, Request, Server, Step, Stream, Venue, endpoint

__all__ = ["Vega", "VegaStream", "VegaServer", "PATHS", "stream_query", "GRPC_CODES", "EXCH_TIME",
           "NORMALIZED", "SEQUENCED", "AGGRESSOR"]

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

#: where a frame's exchange time is (int64 ns, quoted): see the module docstring
EXCH_TIME = ((rb'"timestamp":"?(?P<t>\d{1,19})', "ns"),
             (rb'"lastUpdate":"?(?P<t>\d{1,19})', "ns"),
             (rb'"updatedAt":"?(?P<t>\d{1,19})', "ns"),
             (rb'"createdAt":"?(?P<t>\d{1,19})', "ns"))
#: normalized table -> the streams (channels) whose frames carry its rows
NORMALIZED = {"trades": ("trades",), "quotes": ("markets/data",),
              "book_changes": ("markets/depth", "markets/depth/updates"),
              "bars": ("candle/data",)}
#: the streams whose sequence numbers chain (``check_sequence``)
SEQUENCED = ("markets/depth", "markets/depth/updates")
#: a trade's ``aggressor`` (vega.Side; as a name when enums are sent as names) -> side
AGGRESSOR = {1: "buy", 2: "sell", "SIDE_BUY": "buy", "SIDE_SELL": "sell"}

# the market of a frame's items: ``marketId``, or ``market`` in market data
_MARKET = re.compile(rb'"market(?:Id)?":"([0-9a-fA-F]+)"')
_MARKET_ID = re.compile(r"[0-9a-fA-F]{64}")


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
    exch_time = EXCH_TIME
    normalized = NORMALIZED
    sequenced = SEQUENCED

    def normalize(self, table, message, channel, state):
        result = message["result"]
        if table == "trades":
            return _trades(_items(result, "trades"))
        if table == "quotes":
            return _quotes(_items(result, "marketData"))
        if table == "book_changes":
            return _book_changes(result, state.setdefault("books", {}))
        if table == "bars":
            return _bars(result["candle"], *_candle_of(state.get("url")))
        return ()

    def check_sequence(self, message, channel, state):
        """Market depth chains: an update's ``previousSequenceNumber`` must be the last
        ``sequenceNumber`` seen for its market on the connection (a whole book from
        ``markets/depth`` starts the chain again), and sequence numbers never go back.
        Sequence numbers are the block's time in ns plus the event's number in the block,
        so their difference is no count: each break is one gap of size 1."""
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict):
            return []
        chains = state.setdefault("chains", {})   # market -> (sequenceNumber, whole book)
        gaps = []
        for whole, items in ((True, result.get("marketDepth")), (False, result.get("update"))):
            for item in items if isinstance(items, list) else ():
                if not isinstance(item, dict):
                    continue
                market = item.get("marketId")
                seq, prev = _number(item.get("sequenceNumber")), \
                    _number(item.get("previousSequenceNumber"))
                if seq <= 0:
                    continue   # no sequence number: nothing to check
                last = chains.get(market)
                if last is not None:
                    gap = _chain_break(market, whole, seq, prev, *last)
                    if gap:
                        gaps.append((gap, 1))
                    if seq <= last[0]:
                        continue   # a repeat, or older than the book: the chain stays
                chains[market] = (seq, whole)
        return gaps

    def streams(self, request: Request) -> list[Stream]:
        channels = self.check_channels(request)
        self.check_params(request)
        out = []
        for path in channels:
            query = stream_query(path, request)
            url = endpoint(request.url, f"{DEFAULT_HOST}/{PREFIX}/{path}", f"{PREFIX}/{path}")
            if request.url and not url.rstrip("/").endswith(path):
                url = url.rstrip("/") + "/" + path
            if query:
                url += ("&" if "?" in url else "?") + urlencode(query)
            stream = VegaStream(url, path)
            stream.name = path
            out.append(stream)
        return out


def stream_query(path: str, request: Request) -> list[tuple[str, str]]:
    """The filters of the connection a request makes to stream ``path``: the market
    filter from its symbols, the others from its parameters (UsageError when they don't
    fit the stream)."""
    filters, market_key = PATHS[path]
    query: list[tuple[str, str]] = []
    if request.symbols:
        if market_key is None:
            raise UsageError(f"vega: stream {path} takes no market filter; drop "
                             f"--symbols or use --param")
        if not market_key.endswith("s") and len(request.symbols) > 1:
            raise UsageError(f"vega: stream {path} takes a single market id")
        named = [m for m in request.symbols if not _MARKET_ID.fullmatch(m)]
        if named and request.url is None:   # the venue itself knows markets by id only
            raise UsageError(f"vega: {named[0]!r} is not a market id (64 hex digits); "
                             f"the data node's /api/v2/markets lists them (names work "
                             f"with --sim only)")
        query.extend((market_key, m) for m in request.symbols)
    for key, value in request.params.items():
        if key not in filters:
            continue
        values = split_list(value, seps=",|") if key.endswith("s") else [value]
        query.extend((key, v) for v in values)
    if path == "candle/data" and not request.param("candleId"):
        raise UsageError("vega: candle/data needs --param candleId=...")
    return query


def _filters(query) -> dict[str, set]:
    out: dict[str, set] = {}
    for key, value in query:
        out.setdefault(key, set()).add(value)
    return out


# -- normalized tables ---------------------------------------------------------------------

def _items(result: dict, key: str) -> list:
    """The list ``key`` of a frame's ``result``. An empty list is left out (``{}``);
    any other content means the frame is of another shape (KeyError)."""
    items = result.get(key)
    if items is None:
        if result:
            raise KeyError(f"no {key} in a frame of {', '.join(map(str, result))}")
        return []
    if not isinstance(items, list):
        raise TypeError(f"{key} is a {type(items).__name__}, not a list")
    return items


def _ns(value) -> int | None:
    """An int64 time (a string of ns), None when left out (zero)."""
    return int(value) if value else None


def _trades(items: list) -> list:
    return [(_ns(t.get("timestamp")), t["marketId"], t["id"],
             AGGRESSOR.get(t.get("aggressor"), "unknown"), float(t["price"]), float(t["size"]))
            for t in items]


def _best(price, volume) -> tuple:
    """A best bid or offer as (price, size); (None, None) when the side is empty (no
    volume: the price is then "0")."""
    size = float(volume) if volume else 0.0
    return (float(price), size) if size else (None, None)


def _quotes(items: list) -> list:
    return [(_ns(d.get("timestamp")), d["market"],
             *_best(d.get("bestBidPrice"), d.get("bestBidVolume")),
             *_best(d.get("bestOfferPrice"), d.get("bestOfferVolume")))
            for d in items]


def _book_changes(result: dict, applied: dict) -> list:
    """Rows of whole books (``marketDepth``) or of updates (``update``), skipping a
    market's book or update no newer than the last applied (``applied``: market -> its
    ``sequenceNumber``)."""
    depth = result.get("marketDepth")
    whole = depth is not None
    items = depth if whole else _items(result, "update")
    if not isinstance(items, list):
        raise TypeError(f"marketDepth is a {type(items).__name__}, not a list")
    rows = []
    for item in items:
        market = item["marketId"]
        seq = int(item.get("sequenceNumber") or 0)
        last = applied.get(market)
        if seq and last is not None and seq <= last:
            continue
        applied[market] = seq
        before = len(rows)
        for side, key in (("bid", "buy"), ("ask", "sell")):
            for level in item.get(key) or ():
                rows.append((None, market, whole, side, float(level["price"]),
                             float(level.get("volume") or 0)))
        if whole and len(rows) == before:
            rows.append((None, market, True, None, None, None))   # an empty book
    return rows


def _bars(candle: dict, market: str | None = None, interval: str | None = None) -> list:
    return [(_ns(candle.get("start")), market, interval, float(candle["open"]),
             float(candle["high"]), float(candle["low"]), float(candle["close"]),
             float(candle.get("volume") or 0), None)]


_CANDLE_ID = re.compile(r"^trades_candle_(\w+?)_([0-9a-fA-F]{64})$")
_UNITS = {"minute": "m", "minutes": "m", "hour": "h", "hours": "h", "day": "d", "days": "d"}


def _candle_of(url: str | None) -> tuple[str | None, str | None]:
    """(market, interval) from a candle connection's ``candleId``
    (``trades_candle_<N>_<unit>_<market id>``, e.g. ``trades_candle_15_minutes_2839...``:
    interval ``15m``), or (None, None)."""
    from urllib.parse import parse_qs, urlsplit
    try:
        candle = parse_qs(urlsplit(url or "").query).get("candleId", [""])[0]
    except ValueError:
        return None, None
    m = _CANDLE_ID.match(candle)
    if not m:
        return None, None
    number, _, unit = m.group(1).partition("_")
    short = _UNITS.get(unit)
    return m.group(2), (f"{number}{short}" if number.isdigit() and short else m.group(1))


# -- sequence checks -----------------------------------------------------------------------

def _number(value) -> int:
    """A sequence number (a uint64 string; left out: 0); -1 when it is no number."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return -1


def _chain_break(market, whole: bool, seq: int, prev: int, last: int,
                 last_whole: bool) -> str | None:
    """What breaks a market's chain, or None: a book or update going back, or an update
    whose ``previousSequenceNumber`` is not the last ``sequenceNumber``. An update no
    newer than a whole book, or one that began before it, is covered by that book."""
    if whole:
        return f"market {market}: depth sequenceNumber {seq} after {last}" if seq < last \
            else None
    if seq <= last:
        return None if last_whole else \
            f"market {market}: update sequenceNumber {seq} after {last}"
    if prev == last or (last_whole and prev < last):
        return None
    return f"market {market}: update previousSequenceNumber {prev}, last sequenceNumber {last}"


# -- the server side -----------------------------------------------------------------------

class VegaServer(Server):
    """Vega's side of one connection (PROTOCOLS.md section 3).

    The URL path (``/api/v2/stream/<path>``) picks the stream and its query the filters
    (repeated keys for lists); an unknown filter or a missing ``candleId`` is answered
    with a gRPC InvalidArgument error frame that ends the stream. Client messages are
    ignored. A data frame goes out when it is of the stream and, with a market filter,
    of one of those markets. On a path that is no stream's, no filter is checked.
    ``offered``: a stream it doesn't carry is answered with a NotFound error frame, a
    market or filter outside what it carries (no market filter where it carries some
    markets, a filter other than its own) with InvalidArgument; both end the stream.
    """

    def __init__(self, path="/", headers=None, *, offered: Request | None = None):
        super().__init__(path, headers, offered=offered)
        parts = urlsplit(path)
        stream = parts.path.strip("/")
        if stream.startswith(PREFIX + "/"):
            stream = stream[len(PREFIX) + 1:]
        self.stream = stream
        self.query = parse_qsl(parts.query)
        self.markets = [v for k, v in self.query if k in ("marketIds", "marketId")]

    paths = tuple(f"/{PREFIX}/{p}" for p in PATHS)
    default_path = f"/{PREFIX}/trades"

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
        if self.offered is not None:
            self.check_offered(filters)

    def check_offered(self, filters) -> None:
        request = self.offered
        carried = Vega().check_channels(request)
        if self.stream not in carried:
            return self.error(5, f"stream {self.stream} is {UNAVAILABLE}")
        market_key = PATHS[self.stream][1]
        mine, theirs = _filters(self.query), _filters(stream_query(self.stream, request))
        for key in sorted(set(mine) | set(theirs)):
            wanted, have = mine.get(key), theirs.get(key)
            if key == market_key and have is not None and wanted is not None:
                if wanted <= have:
                    continue
                return self.error(3, f"{key} {', '.join(sorted(wanted - have))} "
                                     f"{UNAVAILABLE}")
            if key == market_key and have is None:
                continue   # every market is carried
            if wanted != have:
                return self.error(3, f"{key} {', '.join(sorted(wanted or {'(all)'}))} "
                                     f"{UNAVAILABLE}")

    def signature(self):
        return self.stream, tuple(self.markets)

    def render(self, payload, text, channels, symbols):
        if list(channels or ()) != [self.stream]:
            return []
        if self.markets and symbols and not set(self.markets) & set(symbols):
            return []
        return [(payload, text)]
