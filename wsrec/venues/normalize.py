"""Normalized tables: the same typed rows for every venue that has the data.

A session keeps each frame's exact bytes; this module gives the analysis view of them.
Each venue's module says which tables its frames carry (``Venue.normalized``: table ->
channels) and maps one decoded frame to rows (``Venue.normalize``); the code here does
the rest, the same way for every venue: decoding a batch of frames at once, typing the
columns, counting what can't be mapped, and rebuilding book snapshots from book changes.

Tables (``TABLES``) and their columns (``schema(table)``). Every table starts with
``local_ts`` (when wsrec received the frame), ``exch_ts`` (the venue's time for the row,
else the frame's ``exch_ts``, else null) and ``venue``, and ends with ``seq``, the frame
the row came from (``open_session(...).frames()`` gives its exact bytes):

* ``trades``: symbol, id, side (buy, sell, unknown: the taker's side), price, size.
* ``quotes``: symbol, bid_px, bid_sz, ask_px, ask_sz (best bid and offer; null when a
  side is empty).
* ``book_changes``: symbol, is_snapshot, side (bid, ask), price, size (0: the level is
  gone). Rows with ``is_snapshot`` come from a full book: the rows of one frame's
  snapshot replace the symbol's whole book; an empty full book is one snapshot row
  whose side, price and size are null.
* ``book_snapshots``: symbol and the top ``depth`` levels of each side,
  ``bid_0_px, bid_0_sz, ... ask_0_px, ...`` (null past the book's end), rebuilt from
  ``book_changes``. Asked for as ``book_snapshots:DEPTH:INTERVAL`` (``parse_table``):
  one row per interval of receive time in which the book changed, stamped with the
  interval's end (``local_ts``) and showing the book as of that end; interval 0 gives
  one row per frame that changed the book.
* ``bars``: symbol, interval (null when the frame doesn't say), open, high, low, close,
  volume, trades (count, null when not sent). ``exch_ts`` is the bar's start.
* ``blocks``: height, block_id (chains).
* ``actions``: height, block_id, tx_id, type, account, data (JSON text): dfuse action
  traces, Flow events.

Prices and sizes are float64: venues send decimal strings of at most 15-16 significant
digits, which float64 holds exactly enough to print back the same decimal (shortest
round-trip repr), and every engine computes on it natively; decimal128 would cost every
user a cast for no digit kept. Vega sends integers in the market's smallest unit (its
decimal places are market metadata, not in the stream): they are kept as those integers.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from wsrec.errors import UsageError
from wsrec.timefmt import parse_duration
from wsrec.venues.base import Venue
from wsrec.venues.tables import TABLES, tables

__all__ = ["TABLES", "FIELDS", "schema", "parse_table", "exchange_times", "Normalizer",
           "MAP_ERRORS", "tables"]

_TS = pa.timestamp("ns", tz="UTC")
_F = pa.float64()
_S = pa.string()

#: table -> the columns a venue's row tuple holds after its exchange time
FIELDS: dict[str, list[tuple[str, pa.DataType]]] = {
    "trades": [("symbol", _S), ("id", _S), ("side", _S), ("price", _F), ("size", _F)],
    "quotes": [("symbol", _S), ("bid_px", _F), ("bid_sz", _F), ("ask_px", _F),
               ("ask_sz", _F)],
    "book_changes": [("symbol", _S), ("is_snapshot", pa.bool_()), ("side", _S),
                     ("price", _F), ("size", _F)],
    "bars": [("symbol", _S), ("interval", _S), ("open", _F), ("high", _F), ("low", _F),
             ("close", _F), ("volume", _F), ("trades", pa.int64())],
    "blocks": [("height", pa.int64()), ("block_id", _S)],
    "actions": [("height", pa.int64()), ("block_id", _S), ("tx_id", _S), ("type", _S),
                ("account", _S), ("data", _S)],
}
SIDES = ("buy", "sell", "unknown")

#: what a venue's ``normalize`` raises for a frame it cannot map
MAP_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError)

_HEAD = [("local_ts", _TS), ("exch_ts", _TS), ("venue", _S)]
_TAIL = [("seq", pa.int64())]
_SNAPSHOT = re.compile(r"^book_snapshots?(?::(\d+))?(?::([0-9.]+[a-z]*))?$")


def parse_table(text: str) -> tuple[str, int, int]:
    """``TABLE`` or ``book_snapshots:DEPTH:INTERVAL`` -> (table, depth, interval ns).
    Depth defaults to 10 and the interval to 0 (every change)."""
    text = (text or "").strip()
    if text in TABLES and text != "book_snapshots":
        return text, 0, 0
    m = _SNAPSHOT.match(text)
    if not m:
        raise UsageError(f"unknown table {text!r} (choose from {', '.join(TABLES)}; "
                         f"book_snapshots:DEPTH:INTERVAL, e.g. book_snapshots:10:100ms)")
    depth = int(m.group(1) or 10)
    if not 1 <= depth <= 1000:
        raise UsageError(f"book snapshot depth must be 1..1000, not {depth}")
    interval = parse_duration(m.group(2)) if m.group(2) else 0
    return "book_snapshots", depth, interval


def schema(table: str, depth: int = 10) -> pa.Schema:
    if table == "book_snapshots":
        levels = [(f"{side}_{i}_{what}", _F) for side in ("bid", "ask") for i in range(depth)
                  for what in ("px", "sz")]
        return pa.schema(_HEAD + [("symbol", _S)] + levels + _TAIL)
    return pa.schema(_HEAD + FIELDS[table] + _TAIL)


# -- exchange timestamps ---------------------------------------------------------------

_RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)?$"
_ZONED = r"(?:Z|[+-]\d\d:\d\d)$"
_DIGITS = r"^\d{1,19}$"
_SCALE = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def exchange_times(payloads: pa.Array, spec: Iterable[tuple[bytes, str]]) -> pa.Array:
    """timestamp[ns, UTC] per payload: the first ``spec`` pattern that matches (see
    ``Venue.exch_time``), else null. Vectorised: a few Arrow kernels per batch."""
    n = len(payloads)
    out = pa.nulls(n, _TS)
    for pattern, unit in spec:
        if not pc.any(pc.is_null(out)).as_py():
            break
        found = pc.struct_field(pc.extract_regex(payloads, pattern), [0])
        times = _parse_times(found, unit)
        out = pc.coalesce(out, times)
    return out


def _parse_times(values: pa.Array, unit: str) -> pa.Array:
    """Matched values (binary or string) -> timestamps; anything malformed is null."""
    well_formed = _RFC3339 if unit == "rfc3339" else _DIGITS
    ok = pc.match_substring_regex(values, well_formed)
    values = pc.if_else(ok, values, pa.scalar(None, values.type)).cast(pa.string())
    if unit == "rfc3339":
        zoned = pc.match_substring_regex(values, _ZONED)
        values = pc.if_else(zoned, values, pc.binary_join_element_wise(values, "Z", ""))
        try:
            return values.cast(_TS)
        except pa.ArrowInvalid:  # a well-formed but impossible time (month 13): one by one
            return pa.array([_one_time(v) for v in values.to_pylist()], _TS)
    scale = _SCALE[unit]
    try:
        ns = values.cast(pa.int64())
        if scale != 1:
            ns = pc.multiply_checked(ns, scale)
    except pa.ArrowInvalid:   # a time past 2262 in ns: null, one by one
        ns = pa.array([None if v is None or int(v) * scale >= 1 << 63 else int(v) * scale
                       for v in values.to_pylist()], pa.int64())
    return ns.cast(_TS)


def _one_time(text):
    if text is None:
        return None
    try:
        return pa.scalar(text).cast(_TS).value
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


# -- normalizing ------------------------------------------------------------------------

class Normalizer:
    """Turns a session's frames (record batches with ``ts``, ``exch_ts``, ``seq``,
    ``stream``, ``conn``, ``dir``, ``kind``, ``channel``, ``channels``, ``payload``) into
    rows of one table: ``feed(batch)`` returns a batch of ``schema(table)`` (possibly
    empty). ``mapped`` and ``unmapped`` count the frames of the table's channels that
    gave rows (or none: an empty update is mapped) and that could not be mapped;
    ``unmapped_seqs`` keeps the first few of those. ``finish()`` returns the last rows
    (book snapshots hold their last interval until then). ``connection(stream, conn,
    url)`` tells the mapping which URL a connection was opened to (its ``state["url"]``:
    a Vega candle stream's market and interval are only there)."""

    KEEP = 20

    def __init__(self, venue, table: str, depth: int = 10, interval_ns: int = 0):
        self.venue, self.table = venue, table
        self.source = "book_changes" if table == "book_snapshots" else table
        self.channels = tuple(venue.normalized.get(self.source, ()))
        self.schema = schema(table, depth)
        self._fields = FIELDS[self.source]
        self.mapped = self.unmapped = 0
        self.unmapped_seqs: list[int] = []
        self._states: dict = {}
        self._books = _Books(depth, interval_ns) if table == "book_snapshots" else None

    def connection(self, stream, conn, url: str | None) -> None:
        self._states.setdefault((stream, conn), {})["url"] = url

    @property
    def columns(self) -> list[str]:
        """The session columns ``feed`` needs."""
        return ["seq", "ts", "exch_ts", "stream", "conn", "dir", "kind", "channel",
                "channels", "payload"]

    def feed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        rows: list[tuple] = []   # (local, exch, *fields, seq)
        wanted = self._wanted(batch)
        if wanted is not None and len(wanted):
            with _gc_paused():
                self._map(batch.filter(wanted), rows)
        columns = list(zip(*rows)) if rows else [[] for _ in range(len(self._fields) + 3)]
        changes = self._typed([list(c) for c in columns])
        if self._books is not None:
            return self._books.feed(changes, self.schema)
        return changes

    def _typed(self, rows: list[list]) -> pa.RecordBatch:
        """The rows as a typed batch. A frame whose rows don't fit the schema (a value of
        the wrong type, an integer past int64) is counted as unmapped and left out."""
        target = schema(self.source)
        try:
            return self._as_batch(rows, self.venue.name, self._fields, target)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass
        seqs = rows[-1]
        keep: list[int] = []
        start = 0
        for end in range(1, len(seqs) + 1):   # the rows of one frame at a time
            if end < len(seqs) and seqs[end] == seqs[start]:
                continue
            one = [column[start:end] for column in rows]
            try:
                self._as_batch(one, self.venue.name, self._fields, target)
                keep.extend(range(start, end))
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                self.mapped -= 1
                self._unmapped(seqs[start])
            start = end
        return self._as_batch([[column[i] for i in keep] for column in rows], self.venue.name,
                              self._fields, target)

    def finish(self) -> pa.RecordBatch:
        if self._books is not None:
            return self._books.finish(self.schema)
        return pa.RecordBatch.from_pylist([], schema=self.schema)

    def _wanted(self, batch: pa.RecordBatch):
        if not self.channels or not batch.num_rows:
            return None
        inbound = pc.equal(batch.column("dir"), "in")
        lists = batch.column("channels")
        flat = pc.is_in(pc.list_flatten(lists), pa.array(self.channels, pa.string()))
        parents = pc.list_parent_indices(lists)
        hit = pc.unique(pc.filter(parents, flat))
        mask = pc.is_in(pa.array(range(batch.num_rows), pa.int64()),
                        hit.cast(pa.int64()))
        return pc.and_(inbound, mask)

    def _map(self, batch: pa.RecordBatch, rows: list[tuple]) -> None:
        payloads = batch.column("payload").to_pylist()
        texts = [k == "text" for k in batch.column("kind").to_pylist()]
        messages = self._decode(payloads, texts)
        local = batch.column("ts").cast(pa.int64()).to_pylist()
        exch = batch.column("exch_ts").cast(pa.int64()).to_pylist()
        seqs = batch.column("seq").to_pylist()
        channels = batch.column("channel").to_pylist()
        keys = zip(batch.column("stream").to_pylist(), batch.column("conn").to_pylist())
        venue, table, states = self.venue, self.source, self._states
        width = len(self._fields) + 1
        add = rows.append
        for message, key, ts, frame_exch, seq, channel in zip(messages, keys, local, exch,
                                                              seqs, channels):
            if message is _BAD:
                self._unmapped(seq)
                continue
            state = states.get(key)
            if state is None:
                state = states[key] = {}
            try:
                got = list(venue.normalize(table, message, channel, state))
                for row in got:
                    if len(row) != width:
                        raise ValueError(f"a row of {len(row)} values")
            except MAP_ERRORS:
                self._unmapped(seq)
                continue
            self.mapped += 1
            for row in got:
                add((ts, frame_exch if row[0] is None else row[0], *row[1:], seq))

    def _unmapped(self, seq: int) -> None:
        self.unmapped += 1
        if len(self.unmapped_seqs) < self.KEEP:
            self.unmapped_seqs.append(seq)

    def _decode(self, payloads: list[bytes], texts: list[bool]) -> list:
        """Each frame decoded; text frames with one JSON parse of the whole batch when
        they all parse (the common case) and the venue decodes text as JSON, else one by
        one through ``Venue.decode``."""
        if all(texts) and type(self.venue).decode is Venue.decode:
            try:
                values = json.loads(b"[" + b",".join(payloads) + b"]")
                if len(values) == len(payloads):
                    return values
            except (ValueError, RecursionError):
                pass
        out = []
        for payload, text in zip(payloads, texts):
            try:
                out.append(self.venue.decode(payload, text))
            except (ValueError, RecursionError, TypeError):
                out.append(_BAD)
        return out

    @staticmethod
    def _as_batch(rows, venue: str, fields, target: pa.Schema) -> pa.RecordBatch:
        n = len(rows[0])
        arrays = [pa.array(rows[0], pa.int64()).cast(_TS),
                  pa.array(rows[1], pa.int64()).cast(_TS),
                  pa.repeat(pa.scalar(venue, _S), n)]
        for i, (_, type_) in enumerate(fields):
            array = pa.array(rows[2 + i], type_)
            if type_ == _F and pc.any(pc.invert(pc.is_finite(array))).as_py():
                array = pc.if_else(pc.is_finite(array), array, None)  # "NaN", "inf": no number
            arrays.append(array)
        arrays.append(pa.array(rows[2 + len(fields)], pa.int64()))
        return pa.RecordBatch.from_arrays(arrays, schema=target)


_BAD = object()


@contextlib.contextmanager
def _gc_paused():
    """No garbage collection while a batch's frames become Python objects and rows: the
    collector would walk the young dicts and lists again and again (measured: it takes
    more than half the time), and none of them is garbage until the batch is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Books:
    """Order books rebuilt from book_changes rows, sampled into snapshot rows."""

    def __init__(self, depth: int, interval_ns: int):
        self.depth, self.interval = depth, interval_ns
        self.books: dict[str, tuple[dict, dict]] = {}
        self.snapshot_seq: dict[str, int] = {}
        self.pending: dict[str, tuple] = {}   # symbol -> (bucket end, exch, seq), changed
        self.out: list[list] = []
        self.venue = None

    def feed(self, changes: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
        cols = [changes.column(n) for n in ("local_ts", "exch_ts", "venue", "symbol",
                                            "is_snapshot", "side", "price", "size", "seq")]
        cols[0], cols[1] = cols[0].cast(pa.int64()), cols[1].cast(pa.int64())
        for local_ns, exch_ns, venue, symbol, snap, side, price, size, seq in \
                zip(*(c.to_pylist() for c in cols)):
            self.venue = venue
            end = self._end(local_ns)
            held = self.pending.get(symbol)
            if held is not None and (held[0] != end or (self.interval == 0 and held[2] != seq)):
                self._emit(symbol, held, venue)
            bids, asks = self.books.setdefault(symbol, ({}, {}))
            if snap and self.snapshot_seq.get(symbol) != seq:
                bids.clear()
                asks.clear()
                self.snapshot_seq[symbol] = seq
            elif not snap:
                self.snapshot_seq.pop(symbol, None)
            if side is None:    # an empty full book: cleared above
                pass
            elif size:
                (bids if side == "bid" else asks)[price] = size
            else:
                (bids if side == "bid" else asks).pop(price, None)
            self.pending[symbol] = (end if self.interval else local_ns, exch_ns, seq)
        return self._take(target)

    def finish(self, target: pa.Schema) -> pa.RecordBatch:
        for symbol, held in list(self.pending.items()):
            self._emit(symbol, held, self.venue)
        return self._take(target)

    def _end(self, local_ns: int) -> int:
        if not self.interval:
            return local_ns
        return (local_ns // self.interval + 1) * self.interval

    def _emit(self, symbol, held, venue) -> None:
        del self.pending[symbol]
        end, exch, seq = held
        bids, asks = self.books[symbol]
        row = [end, exch, venue, symbol]
        for levels, best in ((bids, True), (asks, False)):
            top = sorted(levels.items(), reverse=best)[:self.depth]
            for i in range(self.depth):
                row.extend(top[i] if i < len(top) else (None, None))
        row.append(seq)
        self.out.append(row)

    def _take(self, target: pa.Schema) -> pa.RecordBatch:
        rows, self.out = self.out, []
        rows.sort(key=lambda r: (r[0], r[-1]))
        columns = list(zip(*rows)) if rows else [[] for _ in target]
        arrays = [pa.array(list(c), pa.int64()).cast(_TS) if i < 2 else
                  pa.array(list(c), target.field(i).type) for i, c in enumerate(columns)]
        return pa.RecordBatch.from_arrays(arrays, schema=target)
