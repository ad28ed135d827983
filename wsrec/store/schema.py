"""The row schema shared by every part of every session, and how rows become Arrow.

A row is one WebSocket message or one connection event. Two schemas exist:

* ``JOURNAL_SCHEMA``: what the writer buffers and journals, the columns it is handed.
* ``SCHEMA``: what Parquet parts hold and readers yield. It adds ``channel`` and
  ``symbol`` (derived from the lists), ``exch_ts`` (the venue's own time for the frame,
  found in its payload by the venue's rules: ``Venue.exch_time``) and the constant
  ``venue`` and ``session`` columns.
* ``SCHEMA_NO_EXCH_TS``: ``SCHEMA`` without ``exch_ts``, the parts written before it
  existed. Readers accept such parts and compute ``exch_ts`` from their payloads, by
  the same rules (``exch_ts``).

Every column has a plain type (no Arrow dictionaries, no unsigned integers), so a part
reads the same way in every engine and with every reader, at any batch size: Parquet
dictionary-encodes the low-cardinality strings on disk anyway, so plain Arrow strings cost
nothing in bytes (see docs/FORMAT.md).

``to_part`` turns journal batches into part tables; the writer and the journal
reader both go through it, so a frame looks the same whichever way it is read.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pyarrow as pa

from wsrec.store._compute import pc

__all__ = [
    "SCHEMA",
    "JOURNAL_SCHEMA",
    "COLUMNS",
    "DIRECTIONS",
    "SCHEMA_NO_EXCH_TS",
    "is_part_schema",
    "columns_to_batch",
    "to_part",
    "exch_ts",
    "rules_of",
    "PARQUET_OPTIONS",
]

_TS = pa.timestamp("ns", tz="UTC")
_STRINGS = pa.list_(pa.string())

#: ``dir`` values.
DIRECTIONS = ("in", "out", "event")

JOURNAL_SCHEMA = pa.schema([
    ("seq", pa.int64()),
    ("ts", _TS),
    ("mono_ns", pa.int64()),
    ("conn", pa.int32()),
    ("stream", pa.string()),
    ("dir", pa.string()),
    ("kind", pa.string()),
    ("channels", _STRINGS),
    ("symbols", _STRINGS),
    ("payload", pa.binary()),
])

SCHEMA = pa.schema([
    ("ts", _TS),
    ("mono_ns", pa.int64()),
    ("seq", pa.int64()),
    ("conn", pa.int32()),
    ("stream", pa.string()),
    ("dir", pa.string()),
    ("kind", pa.string()),
    ("channel", pa.string()),
    ("symbol", pa.string()),
    ("exch_ts", _TS),
    ("channels", _STRINGS),
    ("symbols", _STRINGS),
    ("payload", pa.binary()),
    ("venue", pa.string()),
    ("session", pa.string()),
])

COLUMNS = tuple(SCHEMA.names)
SCHEMA_NO_EXCH_TS = SCHEMA.remove(SCHEMA.get_field_index("exch_ts"))


def is_part_schema(schema: pa.Schema) -> bool:
    """Whether a Parquet file's schema is a part's (with ``exch_ts`` or from before it)."""
    return schema.equals(SCHEMA) or schema.equals(SCHEMA_NO_EXCH_TS)


def columns_to_batch(columns: Sequence[list]) -> pa.RecordBatch:
    """Ten equal-length lists ``seq, ts_ns, mono_ns, conn, stream, dir, kind, channels,
    symbols, payload`` (the writer's buffers) -> a ``JOURNAL_SCHEMA`` batch."""
    seq, ts, mono, conn, stream, dirs, kinds, chans, syms, payload = columns
    return pa.RecordBatch.from_arrays([
        pa.array(seq, pa.int64()),
        pa.array(ts, pa.int64()).cast(_TS),
        pa.array(mono, pa.int64()),
        pa.array(conn, pa.int32()),
        pa.array(stream, pa.string()),
        pa.array(dirs, pa.string()),
        pa.array(kinds, pa.string()),
        pa.array(chans, _STRINGS),
        pa.array(syms, _STRINGS),
        _binary(payload),
    ], schema=JOURNAL_SCHEMA)


def _binary(values: list[bytes]) -> pa.Array:
    """A binary array from bytes objects: one join and one offsets array, about four
    times faster than ``pa.array(values, pa.binary())``."""
    lengths = pa.array(list(map(len, values)), pa.int32())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum_checked(lengths)])
    return pa.Array.from_buffers(pa.binary(), len(values),
                                 [None, offsets.buffers()[1], pa.py_buffer(b"".join(values))])


def _single(lists: pa.ListArray) -> pa.Array:
    """The one element of each list that has exactly one, else null."""
    offsets = lists.offsets
    starts = offsets.slice(0, len(lists))
    one = pc.equal(pc.subtract(offsets.slice(1), starts), 1)
    index = pc.if_else(pc.and_(one, lists.is_valid()), pc.subtract(starts, offsets[0]), None)
    return pc.take(lists.flatten(), index)


def rules_of(manifest: dict) -> str:
    """Whose protocol a session's frames follow: the venue it was recorded from
    (``args.venue``: a session recorded with ``--name`` has another folder name), else
    its folder's venue."""
    args = manifest.get("args")
    named = args.get("venue") if isinstance(args, dict) else None
    return named if isinstance(named, str) and named else manifest.get("venue", "")


def exch_ts(venue: str, payloads: pa.Array, kinds: pa.Array, dirs: pa.Array) -> pa.Array:
    """The ``exch_ts`` column for rows of ``venue``: null for a venue wsrec doesn't know,
    and for rows that are not received frames (what the client sent, connection events)."""
    from wsrec.venues import VENUES
    make = VENUES.get(venue)
    if make is None or not len(payloads):
        return pa.nulls(len(payloads), _TS)
    times = _venue(make).exch_ts(payloads, kinds)
    return pc.if_else(pc.equal(dirs, "in"), times, pa.scalar(None, _TS))


_VENUES: dict = {}


def _venue(make):
    venue = _VENUES.get(make)
    if venue is None:
        venue = _VENUES[make] = make()
    return venue


def _part_batch(batch: pa.RecordBatch, venue: str, session: str, rules: str) -> pa.RecordBatch:
    n = batch.num_rows
    chans, syms = batch.column("channels"), batch.column("symbols")
    arrays = {name: batch.column(name) for name in JOURNAL_SCHEMA.names}
    arrays.update(channel=_single(chans), symbol=_single(syms),
                  exch_ts=exch_ts(rules, batch.column("payload"), batch.column("kind"),
                                  batch.column("dir")),
                  venue=pa.repeat(pa.scalar(venue, pa.string()), n),
                  session=pa.repeat(pa.scalar(session, pa.string()), n))
    return pa.RecordBatch.from_arrays([arrays[name] for name in COLUMNS], schema=SCHEMA)


def to_part(batches: Iterable[pa.RecordBatch], venue: str, session: str,
            rules: str | None = None) -> pa.Table:
    """Journal-schema batches -> a table in the part ``SCHEMA`` (one chunk per column);
    ``exch_ts`` by the rules of the venue ``rules`` (default: ``venue``; see
    ``rules_of``)."""
    table = pa.Table.from_batches([_part_batch(b, venue, session, rules or venue)
                                   for b in batches], schema=SCHEMA)
    # One chunk per column: the Parquet writer then cuts full-size pages (per-chunk
    # writes leave small pages that read back at half the speed).
    return table.combine_chunks()


#: How parts are encoded (see docs/FORMAT.md for the reasoning).
#:
#: * zstd level 6 on every column: the payload column is ~75% of a part, and level 6
#:   takes it ~7% below level 3 while a writer thread still compresses >600k frames/s.
#: * DELTA_BINARY_PACKED for ts, mono_ns, exch_ts and seq: consecutive receive times differ by
#:   microseconds, so deltas need ~20 bits where plain int64 needs 64 (zstd can't find
#:   that structure in plain little-endian integers); seq costs almost nothing.
#: * Parquet dictionaries only for the low-cardinality string columns; the payload is
#:   PLAIN (a dictionary of unique messages only wastes time).
#: * A CRC-32 checksum in every page header (an optional Parquet feature that readers
#:   without it ignore): ``Session`` verifies them on every read, so a flipped bit in a
#:   page is an error (or a skipped row group), never silently different data.
#: * 256 KiB data pages (Parquet's default is 1 MiB): a reader holds one decompressed page
#:   per column, so a reader streaming a part (each replay server client) costs about
#:   1 MB instead of 2; parts come out no bigger and read back as fast
#:   (bench/serve_memory.py, docs/PERFORMANCE.md).
PARQUET_OPTIONS = dict(
    compression="zstd",
    compression_level=6,
    use_dictionary=["stream", "dir", "kind", "channel", "symbol", "channels.list.element",
                    "symbols.list.element", "venue", "session", "conn"],
    column_encoding={"ts": "DELTA_BINARY_PACKED", "mono_ns": "DELTA_BINARY_PACKED",
                     "exch_ts": "DELTA_BINARY_PACKED", "seq": "DELTA_BINARY_PACKED"},
    write_statistics=["ts", "mono_ns", "exch_ts", "seq", "conn", "stream", "dir", "kind",
                      "channel", "symbol"],
    write_page_checksum=True,
    data_page_size=256 << 10,
)
